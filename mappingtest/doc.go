// Package mappingtest runs a mapping's transforms over recorded WAL
// fixtures without a database: it renders every transformed change as one
// readable, exact line and compares the lines with a golden file next to
// the fixture, and it checks that every row image comes back unchanged
// through the opposite transform (backward(forward(row)) == row).
//
// The catalogs come from the fixture's header, so a run needs nothing but
// the mapping file, its scripts and the fixture.
package mappingtest

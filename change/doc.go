// Package change is the neutral model that the pipeline stages share: the
// row changes decoded from a source's WAL, the transaction boundaries around
// them, and the changes ready to be written to the other slice.
//
// Nothing here does I/O. The replication stage produces Events, the transform
// stage turns each source Change into zero or more Outs, and the apply stage
// writes Outs and commits the checkpoint with them.
package change

// Package catalog reads what the pipeline needs to know about tables and
// types from a database's system catalogs: columns with their types, keys,
// generated and identity columns, replica identity, and the type graph
// (domains to their base types, arrays to their elements).
//
// A Catalog is a snapshot taken at Load; it does no I/O afterwards and is
// safe for concurrent reads.
package catalog

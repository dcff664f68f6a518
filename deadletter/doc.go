// Package deadletter owns cdcbridge.deadletter, the table on the side
// written that receives the changes a transform rejected under the
// deadletter error policy: its DDL (Ensure, which the up-front checks run),
// its name (Table, which the catalog of the side written includes), and the
// row a rejected change becomes (Row), which the applier writes like any
// other output, in the transaction whose checkpoint passes the change.
package deadletter

package bridgetest

// The orders example: green (the old shape) and blue (the new shape), the
// transform between them, and queries that read both as blue holds them.
const (
	// OrdersGreen is the source's orders table.
	OrdersGreen = `CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric(12,2), status text, note text);`
	// OrdersBlue is the target's orders_v2 table.
	OrdersBlue = `CREATE TABLE orders_v2 (order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount_cents bigint, state smallint, note text);`
	// GreenAsBlue reads green's orders as blue would hold them.
	GreenAsBlue = `SELECT id, round(amount * 100)::bigint, CASE status WHEN 'new' THEN 0 WHEN 'paid' THEN 1 ELSE 2 END, note FROM orders`
	// BlueRows reads blue's orders_v2.
	BlueRows = `SELECT order_id, amount_cents, state, note FROM orders_v2`
	// OrdersJS maps orders to orders_v2 and back (orders.js).
	OrdersJS = `
const STATES = { new: 0, paid: 1, shipped: 2 };
const NAMES = ["new", "paid", "shipped"];
function forward(r) {
  const o = { order_id: r.id };
  if (r.amount !== undefined) o.amount_cents = r.amount === null ? null : Math.round(Number(r.amount) * 100);
  if (r.status !== undefined) o.state = STATES[r.status];
  if (r.note !== undefined) o.note = r.note;
  return o;
}
function backward(r) { return { id: r.order_id, amount: (r.amount_cents / 100).toFixed(2), status: NAMES[r.state], note: r.note } }
`
)

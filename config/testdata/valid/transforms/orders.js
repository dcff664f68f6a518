// orders(id bigint, amount numeric(12,2), status text)  <->  orders_v2(id, amount_cents bigint, state smallint)
const STATES = { new: 0, paid: 1, shipped: 2 };
const NAMES = ["new", "paid", "shipped"];
function forward(row, change)  { return { id: row.id, amount_cents: Math.round(Number(row.amount) * 100), state: STATES[row.status] }; }
function backward(row, change) { return { id: row.id, amount: (row.amount_cents / 100).toFixed(2), status: NAMES[row.state] }; }

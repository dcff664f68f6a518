// customers(id, name, email, created_at) <-> customers(id, full_name, email, created_at)
// Only the renamed column needs code; the others pass through with their
// original bytes. A column absent from `row` (an unchanged TOASTed value)
// stays absent, and the target keeps what it has.
function forward(row, change) {
  const { name, ...rest } = row;
  return name === undefined ? rest : { ...rest, full_name: name };
}

function backward(row, change) {
  const { full_name, ...rest } = row;
  return full_name === undefined ? rest : { ...rest, name: full_name };
}

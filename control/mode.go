package control

// Mode is what the state has a direction do.
type Mode uint8

const (
	// Live applies every change: the direction traffic flows in.
	Live Mode = iota
	// Draining is the direction that was live before the last flip: it
	// still applies what arrives on its side until that side is quiet.
	Draining
	// Armed applies nothing: it keeps its slot just behind the first
	// foreign write, ready for a flip.
	Armed
)

func (m Mode) String() string {
	switch m {
	case Live:
		return "live"
	case Draining:
		return "draining"
	}
	return "armed"
}

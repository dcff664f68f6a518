package pipeline

import (
	"testing"

	"github.com/cdcbridge/cdcbridge/config"
)

func TestEchoTracker(t *testing.T) {
	var e EchoTracker
	e.Wrote(config.Forward, 100)
	e.Wrote(config.Forward, 50) // never moves back
	e.Wrote(config.Reverse, 7)
	if got := e.Echo(config.Reverse); got != 100 {
		t.Errorf("reverse reads the side forward writes: echo %d, want 100", got)
	}
	if got := e.Echo(config.Forward); got != 7 {
		t.Errorf("forward reads the side reverse writes: echo %d, want 7", got)
	}
}

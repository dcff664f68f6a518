package daemon_test

import (
	"testing"

	"github.com/cdcbridge/cdcbridge/internal/bridgetest"
)

func TestMain(m *testing.M) { bridgetest.Main(m) }

package dbconn

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/fault"
)

const secret = "s3cret-Canary"

// A DSN that cannot be parsed is fatal, names the side and never shows the
// password; a server that cannot be reached is not fatal (it may come
// back), names the side and its address, and never shows the password.
func TestConnectErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Connect(ctx, config.NewDSN("postgres://alice:"+secret+"@db:notaport/shop"), "target")
	var fe *fault.FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "the target DSN is not valid") || strings.Contains(err.Error(), secret) {
		t.Errorf("an unparseable DSN: %v", err)
	}
	_, err = Connect(ctx, config.NewDSN("postgres://alice:"+secret+"@127.0.0.1:1/shop?connect_timeout=2"), "source")
	if err == nil || errors.As(err, &fe) || !strings.Contains(err.Error(), "connecting to the source (alice@127.0.0.1:1/shop)") || strings.Contains(err.Error(), secret) {
		t.Errorf("an unreachable server: %v", err)
	}
}

package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/cdcbridge/cdcbridge/apply"
	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/control"
	"github.com/cdcbridge/cdcbridge/fence"
	"github.com/cdcbridge/cdcbridge/pipeline"
	"github.com/cdcbridge/cdcbridge/transform"
)

// halted is why the daemon's pipelines are stopped and wait for a reload.
type halted struct {
	dir config.Direction
	err error
}

// badChange reports whether err stopped a pipeline before a change that
// the transform or the side written could not take, and what the status
// shows of it.
func badChange(dir config.Direction, err error) (control.Halt, bool) {
	if err == nil {
		return control.Halt{}, false
	}
	h := control.Halt{Direction: dir, Reason: err.Error()}
	var ae *apply.Error
	var te *transform.Error
	switch {
	case errors.As(err, &ae):
		h.Table, h.Key, h.LSN = ae.Table.String(), ae.Key, ae.LSN
	case errors.As(err, &te):
		h.Table, h.Key, h.LSN = te.Table.String(), te.Key, te.LSN
	default:
		return h, false
	}
	return h, true
}

// halt stops every pipeline after dir's stopped on a bad change, and keeps
// the daemon up: its metrics keep serving, the halt is in the state for
// `status`, and a reload (SIGHUP) with the transform or the side written
// fixed starts the pipelines again from their checkpoints, which stop just
// before the bad change.
func (d *daemon) halt(ctx context.Context, h control.Halt, err error) {
	d.stopAll()
	d.halted = &halted{dir: h.Direction, err: err}
	d.log.Error("halted before a bad change; fix the transform or the side written, then reload (SIGHUP) to go on from it",
		"direction", h.Direction.String(), "table", h.Table, "key", h.Key, "lsn", h.LSN.String(), "error", err.Error())
	if d.link.conn != nil {
		if rerr := control.RecordHalt(ctx, d.link.conn, d.m.Name, h); rerr != nil && ctx.Err() == nil {
			d.log.Warn("recording the halt in the state", "error", d.m.Redact(rerr).Error())
		}
	}
}

// reload reads the mapping and its scripts again (Options.Load) and, when
// they are valid, restarts the pipelines from their checkpoints with them;
// otherwise the daemon goes on as it was and says why. A halted daemon
// runs again.
func (d *daemon) reload(ctx context.Context) {
	if d.o.Load == nil {
		d.log.Warn("reload asked for, but this daemon has no mapping file to read again")
		return
	}
	m, err := d.o.Load()
	if err == nil && (m.Name != d.m.Name || m.Source.DSN.String() != d.m.Source.DSN.String() || m.Target.DSN.String() != d.m.Target.DSN.String()) {
		err = errors.New("the mapping's name or DSNs changed: those take a restart, not a reload")
	}
	if err != nil {
		d.log.Error("reload failed; the daemon goes on with the mapping and scripts it had", "error", d.m.Redact(err).Error())
		return
	}
	d.log.Info("reloading the mapping and its scripts; the pipelines start again from their checkpoints", "mapping", m.Path)
	if err := d.stopAll(); err != nil && !errors.Is(err, context.Canceled) {
		d.log.Warn("a pipeline stopped with an error for the reload", "error", d.m.Redact(err).Error())
	}
	d.m, d.o.Mapping = m, m
	d.link.m = m
	d.o.Scripts = pipeline.CompileScripts(m)
	d.halted = nil
	if d.link.conn != nil {
		if err := control.ClearHalts(ctx, d.link.conn, m.Name); err != nil && ctx.Err() == nil {
			d.log.Warn("clearing the halt in the state", "error", m.Redact(err).Error())
		}
	}
	st, err := control.Load(ctx, d.link.conn, m.Name)
	if err != nil {
		// The next poll reads it again; start as the state last said.
		d.log.Warn("reading the bridge state for the reload", "error", m.Redact(err).Error())
		st = control.State{Name: m.Name, Live: d.live}
	}
	d.setLive(st.Live)
	// A reload may turn the fence on or off, or map more tables.
	if err := fence.Converge(ctx, m, st, d.o.Logger); err != nil {
		d.log.Warn("putting the fence where the state says after the reload", "error", m.Redact(err).Error())
	}
	d.startPipelines(st)
}

// haltError is the error Run returns for a halt when the daemon is to exit
// on it (Options.ExitOnHalt).
func haltError(err error) error {
	return fmt.Errorf("%w (exiting on the halt: --exit-on-halt)", err)
}

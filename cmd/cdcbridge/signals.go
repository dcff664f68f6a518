package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// signals are the signals that stop a command cleanly.
var signals = []os.Signal{syscall.SIGINT, syscall.SIGTERM}

// signalContext is the context of a command's work: it ends on SIGINT or
// SIGTERM, so that an operator's interrupt stops the command cleanly.
func signalContext() (context.Context, context.CancelFunc) {
	return loggedSignalContext(nil, "")
}

// loggedSignalContext is signalContext for a command with a log: each
// signal received is a record (Info) naming the signal and saying what
// happens next (then), and a signal received while the command already
// stops is a record too. The returned stop function ends the watch and
// waits for it.
func loggedSignalContext(log *slog.Logger, then string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, signals...)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case sig := <-ch:
				if log != nil {
					if ctx.Err() == nil {
						log.Info("signal received; "+then, "signal", signalName(sig))
					} else {
						log.Info("signal received while stopping; still stopping", "signal", signalName(sig))
					}
				}
				cancel()
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			wg.Wait()
			cancel()
		})
	}
}

// signalName is the name an operator uses for sig: SIGTERM, not
// "terminated".
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

// reloads turns SIGHUP (systemctl reload) into reload requests for the
// daemon until ctx ends. A request made while one is pending is merged
// into it.
func reloads(ctx context.Context, log *slog.Logger) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("signal received; reloading the mapping and its scripts", "signal", "SIGHUP")
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

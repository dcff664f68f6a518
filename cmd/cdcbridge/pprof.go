package main

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/cdcbridge/cdcbridge/metrics"
)

// servePprof serves Go's profiler (/debug/pprof/) on addr until ctx ends,
// on a listener of its own: profiles show the daemon's code and its data's
// shape, so they stay off the metrics port unless asked for. Off by
// default (run --pprof addr).
func servePprof(ctx context.Context, addr string) (net.Addr, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return metrics.ServeHandler(ctx, addr, mux)
}

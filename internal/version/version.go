// Package version says which build of cdcbridge runs: the version stamped
// at build time with -ldflags, or else what the Go toolchain recorded
// (the module version and the VCS revision).
package version

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Version and Revision can be stamped at build time:
//
//	go build -ldflags "-X github.com/cdcbridge/cdcbridge/internal/version.Version=v1.2.3 \
//	  -X github.com/cdcbridge/cdcbridge/internal/version.Revision=$(git rev-parse HEAD)" ./cmd/cdcbridge
var (
	Version  string
	Revision string
)

// Info describes the running build.
type Info struct {
	Version   string // "v1.2.3", or "(devel)" for a build from a work tree
	Revision  string // the VCS commit, "" if unknown; "-dirty" appended for a modified tree
	GoVersion string
}

var (
	once sync.Once
	info Info
)

// Get returns the running build's Info.
func Get() Info {
	once.Do(func() { info = read(Version, Revision) })
	return info
}

func read(stampedVersion, stampedRevision string) Info {
	i := Info{Version: stampedVersion, Revision: stampedRevision, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if i.Version == "" && bi.Main.Version != "" {
			i.Version = bi.Main.Version
		}
		if i.Revision == "" {
			var dirty bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					i.Revision = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if i.Revision != "" && dirty {
				i.Revision += "-dirty"
			}
		}
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	return i
}

// String is the one-line form `cdcbridge version` prints.
func (i Info) String() string {
	s := "cdcbridge " + i.Version
	if i.Revision != "" {
		s += " (" + i.Revision + ")"
	}
	return s + " " + i.GoVersion
}

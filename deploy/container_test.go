package deploy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// TestContainerImage builds the image as its Containerfile says (the static
// binary first, then buildah with no network and an empty base) and checks
// what the result runs, as whom, and that nothing but the binary and the
// CA bundle is in it.
func TestContainerImage(t *testing.T) {
	buildah := tool(t, "buildah", "buildah")
	if os.Geteuid() != 0 {
		missing(t, "buildah with the vfs driver and chroot isolation runs as root here")
	}
	if _, err := os.Stat(caBundle); err != nil {
		missing(t, "%s: %v (Debian package ca-certificates)", caBundle, err)
	}

	ctx := t.TempDir()
	bin := cdcbridgeBinary(t)
	checkStaticBinary(t, bin)
	copyFile(t, bin, filepath.Join(ctx, "cdcbridge"), 0o755)
	copyFile(t, caBundle, filepath.Join(ctx, "ca-certificates.crt"), 0o644)

	containerfile, err := filepath.Abs("container/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	vfs := []string{"--storage-driver", "vfs"}
	tag := fmt.Sprintf("localhost/cdcbridge-deploytest:%d", os.Getpid())
	run(t, ctx, buildah, append(vfs, "bud", "--isolation", "chroot", "--pull-never",
		"-f", containerfile, "--build-arg", "VERSION="+testVersion, "--build-arg", "REVISION="+testRev,
		"-t", tag, ctx)...)
	t.Cleanup(func() {
		if out, err := exec.Command(buildah, append(vfs, "rmi", "--force", tag)...).CombinedOutput(); err != nil {
			t.Errorf("removing the test image: %v\n%s", err, out)
		}
	})

	var img struct {
		OCIv1 struct {
			OS     string `json:"os"`
			Config struct {
				User         string              `json:"User"`
				Entrypoint   []string            `json:"Entrypoint"`
				Cmd          []string            `json:"Cmd"`
				ExposedPorts map[string]struct{} `json:"ExposedPorts"`
				Labels       map[string]string   `json:"Labels"`
			} `json:"config"`
		} `json:"OCIv1"`
	}
	out := run(t, ctx, buildah, append(vfs, "inspect", "--type", "image", tag)...)
	if err := json.Unmarshal([]byte(out), &img); err != nil {
		t.Fatalf("buildah inspect: %v\n%s", err, out)
	}
	c := img.OCIv1.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want the numeric non-root 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/cdcbridge"}) {
		t.Errorf("entrypoint %q, want [/cdcbridge]", c.Entrypoint)
	}
	if !slices.Equal(c.Cmd, []string{"run", "-c", "/etc/cdcbridge/mapping.yaml"}) {
		t.Errorf("cmd %q, want run -c /etc/cdcbridge/mapping.yaml", c.Cmd)
	}
	if _, ok := c.ExposedPorts["9632/tcp"]; !ok {
		t.Errorf("exposed ports %v, want 9632/tcp", c.ExposedPorts)
	}
	if v, r := c.Labels["org.opencontainers.image.version"], c.Labels["org.opencontainers.image.revision"]; v != testVersion || r != testRev {
		t.Errorf("labels say version %q revision %q, want %q %q", v, r, testVersion, testRev)
	}

	// The files of the image, from its layers.
	dir := t.TempDir()
	run(t, ctx, buildah, append(vfs, "push", tag, "dir:"+dir)...)
	files := imageFiles(t, dir)
	want := map[string]bool{"cdcbridge": true, "etc/ssl/certs/ca-certificates.crt": false}
	for name, exe := range want {
		mode, ok := files[name]
		switch {
		case !ok:
			t.Errorf("the image has no /%s", name)
		case exe && mode&0o111 != 0o111:
			t.Errorf("/%s has mode %o, want it executable by all", name, mode)
		}
	}
	for name := range files {
		if _, ok := want[name]; !ok {
			t.Errorf("the image holds /%s; want only the binary and the CA bundle (no shell, no libc)", name)
		}
	}
}

// checkStaticBinary checks that bin needs no dynamic loader and carries
// the stamped version.
func checkStaticBinary(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked: it would not start on an empty base", bin)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(testVersion)) || !bytes.Contains(data, []byte(testRev)) {
		t.Errorf("-X %s.Version and .Revision stamped nothing: has the package or its variables moved?", versionPkg)
	}
}

// imageFiles returns the files (not directories) of an image pushed with
// buildah push IMAGE dir:DIR, with their modes, without the leading /.
func imageFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	var manifest struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest.Layers) == 0 {
		t.Fatalf("the image has no layers")
	}
	files := map[string]int64{}
	for _, l := range manifest.Layers {
		_, hex, _ := strings.Cut(l.Digest, ":")
		f, err := os.Open(filepath.Join(dir, hex))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		br := bufio.NewReader(f)
		var r io.Reader = br
		if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(br)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			name := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
			if h.Typeflag != tar.TypeDir {
				files[name] = h.Mode
			}
		}
	}
	return files
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

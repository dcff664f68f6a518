package deploy

import (
	"bytes"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/cdcbridge/cdcbridge/check"
	"github.com/cdcbridge/cdcbridge/config"
)

const metricsPort = 9632

// manifests is every object in deploy/kubernetes, decoded strictly.
type manifests struct {
	deployment *appsv1.Deployment
	configMap  *corev1.ConfigMap
	secret     *corev1.Secret
}

// decodeStrict decodes one manifest into its Kubernetes API type. Unknown
// and repeated fields are errors, as `kubectl apply --validate=strict`
// makes them.
func decodeStrict(data []byte) (runtime.Object, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	obj, _, err := codecs.UniversalDeserializer().Decode(data, nil, nil)
	return obj, err
}

// docSep splits a multi-document YAML file.
var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// yamlEmpty reports whether a YAML document holds only comments and blanks.
var yamlEmpty = regexp.MustCompile(`\A(\s*(#.*)?\n?)*\z`)

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*")
	if err != nil {
		t.Fatal(err)
	}
	var m manifests
	for _, f := range files {
		if ext := filepath.Ext(f); ext != ".yaml" {
			t.Errorf("%s: only .yaml manifests belong in kubernetes/ (kubectl apply -f takes the whole folder)", f)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(data), -1) {
			if yamlEmpty.MatchString(doc) {
				continue
			}
			obj, err := decodeStrict([]byte(doc))
			if err != nil {
				t.Errorf("%s: document %d: %v", f, i, err)
				continue
			}
			switch o := obj.(type) {
			case *appsv1.Deployment:
				setOnce(t, f, &m.deployment, o)
			case *corev1.ConfigMap:
				setOnce(t, f, &m.configMap, o)
			case *corev1.Secret:
				setOnce(t, f, &m.secret, o)
			default:
				t.Errorf("%s: document %d: unexpected %T", f, i, obj)
			}
		}
	}
	if m.deployment == nil || m.configMap == nil || m.secret == nil {
		t.Fatalf("want one Deployment, ConfigMap and Secret decoded from kubernetes/; have Deployment %t, ConfigMap %t, Secret %t",
			m.deployment != nil, m.configMap != nil, m.secret != nil)
	}
	return m
}

func setOnce[T any](t *testing.T, file string, dst **T, v *T) {
	t.Helper()
	if *dst != nil {
		t.Errorf("%s: a second %T", file, v)
	}
	*dst = v
}

// TestKubernetesStrictDecoding proves the decoder used on the manifests
// rejects what the API server would: a misspelt field and a repeated one.
func TestKubernetesStrictDecoding(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndatta: {a: b}\n",
		"nested typo":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 1\n  strategy: {tpye: Recreate}\n",
		"repeated field": "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ntype: Opaque\ntype: Opaque\n",
	} {
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error:\n%s", name, doc)
		}
	}
	if _, err := decodeStrict([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")); err != nil {
		t.Errorf("a valid ConfigMap: %v", err)
	}
}

func TestKubernetesDeployment(t *testing.T) {
	m := loadManifests(t)
	d := m.deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1: two daemons must not stream one slot", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy = %q, want Recreate: a rolling update would run two daemons at once", d.Spec.Strategy.Type)
	}
	pod := d.Spec.Template
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 {
		t.Fatalf("no selector")
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if pod.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod's labels %v", k, v, pod.Labels)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	// Metrics, probes and scrape annotations all meet on the metrics port.
	port := func(p intstr.IntOrString) int32 {
		if p.Type == intstr.Int {
			return p.IntVal
		}
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return cp.ContainerPort
			}
		}
		t.Errorf("port %q is not a named port of the container", p.StrVal)
		return 0
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == metricsPort }) {
		t.Errorf("container ports %v lack %d", c.Ports, metricsPort)
	}
	for name, pr := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet probe", name)
			continue
		}
		if g := pr.probe.HTTPGet; g.Path != pr.path || port(g.Port) != metricsPort {
			t.Errorf("%s probe: GET %s on port %v, want %s on %d", name, g.Path, g.Port.String(), pr.path, metricsPort)
		}
	}
	wantAnn := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": strconv.Itoa(metricsPort), "prometheus.io/path": "/metrics"}
	for k, v := range wantAnn {
		if pod.Annotations[k] != v {
			t.Errorf("pod annotation %s = %q, want %q", k, pod.Annotations[k], v)
		}
	}

	// The daemon keeps its heap near 96 MiB.
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("resource requests %v: want cpu and memory", c.Resources.Requests)
	}
	lim := c.Resources.Limits.Memory()
	if lim.Cmp(resource.MustParse("192Mi")) < 0 {
		t.Errorf("memory limit %v, want at least 192Mi", lim)
	}
	if c.Resources.Requests.Memory().Cmp(*lim) > 0 {
		t.Errorf("memory request %v above the limit %v", c.Resources.Requests.Memory(), lim)
	}

	// Security: the container's own settings override the pod's.
	psc, csc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || csc == nil {
		t.Fatalf("want a pod and a container securityContext")
	}
	nonRoot := csc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	user := csc.RunAsUser
	if user == nil {
		user = psc.RunAsUser
	}
	seccomp := csc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	switch {
	case nonRoot == nil || !*nonRoot:
		t.Errorf("runAsNonRoot is not true")
	case user == nil || *user != 65532:
		t.Errorf("runAsUser = %v, want 65532 (the image's user)", user)
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem is not true")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation is not false")
	}
	if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) > 0 {
		t.Errorf("capabilities = %+v, want drop [ALL] and nothing added", csc.Capabilities)
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile = %+v, want RuntimeDefault", seccomp)
	}
}

// TestKubernetesMapping checks that the container runs the ConfigMap's
// mapping, that every ${VAR} it reads comes from the Secret, and that the
// daemon's own parser accepts it, scripts included, listening on the port
// that the probes use.
func TestKubernetesMapping(t *testing.T) {
	m := loadManifests(t)
	c := m.deployment.Spec.Template.Spec.Containers[0]

	i := slices.Index(c.Args, "-c")
	if len(c.Args) < 1 || c.Args[0] != "run" || i < 0 || i+1 == len(c.Args) {
		t.Fatalf("args %q: want run -c FILE", c.Args)
	}
	mappingPath := c.Args[i+1]
	var mount *corev1.VolumeMount
	for j, vm := range c.VolumeMounts {
		if vm.MountPath == path.Dir(mappingPath) {
			mount = &c.VolumeMounts[j]
		}
	}
	if mount == nil {
		t.Fatalf("no volume is mounted at %s, the mapping's folder", path.Dir(mappingPath))
	}
	if !mount.ReadOnly {
		t.Errorf("the mapping's volume is mounted read-write")
	}
	vi := slices.IndexFunc(m.deployment.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
	if vi < 0 {
		t.Fatalf("volume %q is mounted but not defined", mount.Name)
	}
	vol := m.deployment.Spec.Template.Spec.Volumes[vi]
	if vol.ConfigMap == nil || vol.ConfigMap.Name != m.configMap.Name || len(vol.ConfigMap.Items) > 0 {
		t.Fatalf("volume %q = %+v, want the whole ConfigMap %q", vol.Name, vol.VolumeSource, m.configMap.Name)
	}
	data, ok := m.configMap.Data[path.Base(mappingPath)]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s, the file that run -c reads", m.configMap.Name, path.Base(mappingPath))
	}

	// Every variable the mapping reads is set from the Secret's keys.
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != m.secret.Name {
			t.Errorf("env %s reads Secret %q, want %q", e.Name, ref.Name, m.secret.Name)
			continue
		}
		v, ok := m.secret.StringData[ref.Key]
		if !ok {
			t.Errorf("env %s reads key %q, which Secret %s lacks", e.Name, ref.Key, m.secret.Name)
		}
		env[e.Name] = v
	}
	vars := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllStringSubmatch(data, -1)
	if len(vars) == 0 {
		t.Errorf("the mapping reads no ${VAR}: the DSNs belong in the Secret")
	}
	for _, v := range vars {
		if _, ok := env[v[1]]; !ok {
			t.Errorf("the mapping reads ${%s}, which no env entry sets from the Secret", v[1])
		}
		t.Setenv(v[1], env[v[1]])
	}

	// The daemon's parser, on the files as the pod sees them.
	dir := t.TempDir()
	for k, v := range m.configMap.Data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	mapping, err := config.Load(filepath.Join(dir, path.Base(mappingPath)))
	if err != nil {
		t.Fatalf("the ConfigMap's mapping: %v", err)
	}
	if err := check.CheckScripts(mapping); err != nil {
		t.Errorf("the ConfigMap's scripts: %v", err)
	}
	_, p, err := net.SplitHostPort(mapping.Metrics.Listen)
	if err != nil || p != strconv.Itoa(metricsPort) {
		t.Errorf("the mapping's metrics.listen = %q, want port %d (probes and scrapes use it)", mapping.Metrics.Listen, metricsPort)
	}
	if host, _, _ := net.SplitHostPort(mapping.Metrics.Listen); host != "" && !net.ParseIP(host).IsUnspecified() {
		t.Errorf("the mapping's metrics.listen = %q: the kubelet and Prometheus reach the pod's IP, not %s", mapping.Metrics.Listen, host)
	}
	if !bytes.Contains([]byte(data), []byte("transform:")) {
		t.Errorf("the example mapping has no transform: it should show where scripts go")
	}
}

package deploy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// kustomizations are the entry points users apply; each is checked as the
// set of objects it renders.
var kustomizations = []string{
	"ingress-backend",
	"exporter-sidecar",
	"exporter-sidecar-oauth2",
	"grafana-datasource",
}

// apiVersions are the kinds the manifests may use, with their API version.
var apiVersions = map[string]string{
	"ServiceAccount":      "v1",
	"ConfigMap":           "v1",
	"Service":             "v1",
	"Deployment":          "apps/v1",
	"DaemonSet":           "apps/v1",
	"Ingress":             "networking.k8s.io/v1",
	"NetworkPolicy":       "networking.k8s.io/v1",
	"PodDisruptionBudget": "policy/v1",
	"ServiceMonitor":      "monitoring.coreos.com/v1",
	"PrometheusRule":      "monitoring.coreos.com/v1",
	"Certificate":         "cert-manager.io/v1",
}

// externalSecrets are Secrets the user creates (docs/deployment.md lists
// them); every other Secret a manifest names must come from a Certificate.
var externalSecrets = map[string]bool{
	"promgate-login":    true,
	"prometheus-oauth2": true,
}

// externalPods are pod labels of workloads outside these manifests that a
// NetworkPolicy may name: prometheus-operator's Prometheus and cluster DNS.
var externalPods = []map[string]string{
	{"app.kubernetes.io/name": "prometheus"},
	{"k8s-app": "kube-dns"},
}

// notYet maps a configuration to the single "not supported yet" problem
// promgate check must report for it until the feature lands; when check
// starts passing (or fails otherwise), the test fails and this entry goes.
var notYet = map[string]string{}

type obj = map[string]any

func get(o any, keys ...string) any {
	for _, k := range keys {
		m, ok := o.(obj)
		if !ok {
			return nil
		}
		o = m[k]
	}
	return o
}

func str(o any, keys ...string) string {
	s, _ := get(o, keys...).(string)
	return s
}

func list(o any, keys ...string) []any {
	l, _ := get(o, keys...).([]any)
	return l
}

func stringMap(o any) map[string]string {
	m, _ := o.(obj)
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func id(o obj) string { return str(o, "kind") + "/" + str(o, "metadata", "name") }

// decodeAll decodes every YAML document of b into generic objects.
func decodeAll(b []byte) ([]obj, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []obj
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

func readObjects(t *testing.T, file string) []obj {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return objs
}

// mergePatch applies p to o with JSON merge-patch semantics: maps merge,
// everything else is replaced. It is what kustomize does for a custom
// resource, whose lists it cannot merge by key.
func mergePatch(o, p obj) {
	for k, v := range p {
		if pm, ok := v.(obj); ok {
			if om, ok := o[k].(obj); ok {
				mergePatch(om, pm)
				continue
			}
		}
		o[k] = v
	}
}

// render resolves a kustomization the way kustomize does for these
// manifests: resources (files and folders), the namespace, the image tag and
// strategic-merge patches of custom resources. used collects every file read.
func render(t *testing.T, dir string, used map[string]bool) []obj {
	t.Helper()
	kfile := filepath.Join(dir, "kustomization.yaml")
	used[kfile] = true
	ks := readObjects(t, kfile)
	if len(ks) != 1 || str(ks[0], "kind") != "Kustomization" || str(ks[0], "apiVersion") != "kustomize.config.k8s.io/v1beta1" {
		t.Fatalf("%s: not one kustomize.config.k8s.io/v1beta1 Kustomization", kfile)
	}
	k := ks[0]
	var objs []obj
	for _, r := range list(k, "resources") {
		p := filepath.Join(dir, r.(string))
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: resource %v", kfile, err)
		}
		if fi.IsDir() {
			objs = append(objs, render(t, p, used)...)
			continue
		}
		used[p] = true
		objs = append(objs, readObjects(t, p)...)
	}
	for _, pt := range list(k, "patches") {
		p := filepath.Join(dir, str(pt, "path"))
		used[p] = true
		for _, patch := range readObjects(t, p) {
			var target obj
			for _, o := range objs {
				if id(o) == id(patch) {
					target = o
				}
			}
			if target == nil {
				t.Fatalf("%s: patch of %s, which the base does not have", p, id(patch))
			}
			if _, builtin := map[string]bool{"v1": true, "apps/v1": true, "policy/v1": true, "networking.k8s.io/v1": true}[str(patch, "apiVersion")]; builtin {
				t.Fatalf("%s: this test merges patches of custom resources only", p)
			}
			mergePatch(target, patch)
		}
	}
	if ns := str(k, "namespace"); ns != "" {
		for _, o := range objs {
			o["metadata"].(obj)["namespace"] = ns
		}
	}
	for _, img := range list(k, "images") {
		name, tag := str(img, "name"), str(img, "newTag")
		for _, o := range objs {
			for _, c := range containers(o) {
				if ref, _, _ := strings.Cut(str(c, "image"), ":"); ref == name {
					c["image"] = name + ":" + tag
				}
			}
		}
	}
	return objs
}

func containers(o obj) []obj {
	var out []obj
	for _, c := range list(o, "spec", "template", "spec", "containers") {
		out = append(out, c.(obj))
	}
	return out
}

func isWorkload(o obj) bool { return str(o, "kind") == "Deployment" || str(o, "kind") == "DaemonSet" }

// selects reports whether every label of sel is in labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// podsOf returns the workloads in objs whose pods sel selects.
func podsOf(objs []obj, sel map[string]string) []obj {
	var out []obj
	for _, o := range objs {
		if isWorkload(o) && selects(sel, stringMap(get(o, "spec", "template", "metadata", "labels"))) {
			out = append(out, o)
		}
	}
	return out
}

func find(objs []obj, kind, name string) obj {
	for _, o := range objs {
		if str(o, "kind") == kind && str(o, "metadata", "name") == name {
			return o
		}
	}
	return nil
}

// certSecrets returns the Secrets cert-manager writes for the Certificates
// in objs.
func certSecrets(objs []obj) map[string]obj {
	out := map[string]obj{}
	for _, o := range objs {
		if str(o, "kind") == "Certificate" {
			out[str(o, "spec", "secretName")] = o
		}
	}
	return out
}

// containerPort resolves a probe's or Service's port (a name or a number)
// against a container's ports.
func containerPort(c obj, port any) (int, bool) {
	for _, p := range list(c, "ports") {
		n, _ := get(p, "containerPort").(int)
		if fmt.Sprint(port) == str(p, "name") || fmt.Sprint(port) == strconv.Itoa(n) {
			return n, true
		}
	}
	return 0, false
}

func TestManifests(t *testing.T) {
	for _, k := range kustomizations {
		t.Run(k, func(t *testing.T) {
			checkObjects(t, render(t, filepath.Join("kubernetes", k), map[string]bool{}))
		})
	}
}

// TestEveryManifestRendered checks that every manifest is reachable from a
// kustomization that TestManifests checks, so none escapes the checks.
func TestEveryManifestRendered(t *testing.T) {
	used := map[string]bool{}
	for _, k := range kustomizations {
		render(t, filepath.Join("kubernetes", k), used)
	}
	err := filepath.WalkDir("kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) && !used[p] {
			t.Errorf("%s is in no kustomization that the test renders", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKustomizeBuild renders each kustomization with the real kustomize
// (kubectl kustomize) when kubectl is installed, and checks its output too.
func TestKustomizeBuild(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed; TestManifests renders the kustomizations itself")
	}
	for _, k := range kustomizations {
		t.Run(k, func(t *testing.T) {
			out, err := exec.Command("kubectl", "kustomize", filepath.Join("kubernetes", k)).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl kustomize: %v\n%s", err, out)
			}
			objs, err := decodeAll(out)
			if err != nil {
				t.Fatal(err)
			}
			checkObjects(t, objs)
			mine := render(t, filepath.Join("kubernetes", k), map[string]bool{})
			var a, b []string
			for _, o := range objs {
				a = append(a, id(o)+" "+str(o, "metadata", "namespace"))
			}
			for _, o := range mine {
				b = append(b, id(o)+" "+str(o, "metadata", "namespace"))
			}
			slices.Sort(a)
			slices.Sort(b)
			if diff := cmp.Diff(a, b); diff != "" {
				t.Errorf("objects of kubectl kustomize (-) and of the test's render (+) differ:\n%s", diff)
			}
		})
	}
}

// checkObjects runs every check on the objects of one kustomization.
func checkObjects(t *testing.T, objs []obj) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range objs {
		kind, name := str(o, "kind"), str(o, "metadata", "name")
		if want, ok := apiVersions[kind]; !ok || str(o, "apiVersion") != want {
			t.Errorf("%s: apiVersion %q; known kinds and versions: %v", id(o), str(o, "apiVersion"), apiVersions)
		}
		if name == "" || str(o, "metadata", "namespace") == "" {
			t.Errorf("%s: metadata.name and metadata.namespace are required", id(o))
		}
		if seen[id(o)] {
			t.Errorf("%s: defined twice", id(o))
		}
		seen[id(o)] = true
		if str(o, "metadata", "labels", "app.kubernetes.io/name") == "" {
			t.Errorf("%s: label app.kubernetes.io/name is required", id(o))
		}
		switch kind {
		case "Deployment", "DaemonSet":
			checkWorkload(t, objs, o)
		case "Service":
			checkService(t, objs, o)
		case "PodDisruptionBudget":
			checkPDB(t, objs, o)
		case "NetworkPolicy":
			checkNetworkPolicy(t, objs, o)
		case "Ingress":
			checkIngress(t, objs, o)
		case "ServiceMonitor":
			checkServiceMonitor(t, objs, o)
		case "Certificate":
			if str(o, "spec", "secretName") == "" || str(o, "spec", "issuerRef", "name") == "" || len(list(o, "spec", "usages")) == 0 {
				t.Errorf("%s: secretName, issuerRef and usages are required", id(o))
			}
		case "PrometheusRule":
			if len(list(o, "spec", "groups")) == 0 {
				t.Errorf("%s: no rule groups", id(o))
			}
		case "ConfigMap":
			if str(o, "metadata", "labels", "grafana_datasource") != "" {
				checkDatasources(t, objs, o)
			}
		}
	}
}

func checkWorkload(t *testing.T, objs []obj, o obj) {
	t.Helper()
	sel := stringMap(get(o, "spec", "selector", "matchLabels"))
	labels := stringMap(get(o, "spec", "template", "metadata", "labels"))
	if !selects(sel, labels) {
		t.Errorf("%s: selector %v does not match the pod template's labels %v", id(o), sel, labels)
	}
	if str(o, "kind") == "Deployment" {
		if n, _ := get(o, "spec", "replicas").(int); n < 2 {
			t.Errorf("%s: %d replicas, want 2 or more", id(o), n)
		}
	}
	pod := get(o, "spec", "template", "spec").(obj)
	if get(pod, "automountServiceAccountToken") != false {
		t.Errorf("%s: automountServiceAccountToken must be false: promgate never calls the Kubernetes API", id(o))
	}
	for _, k := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if get(pod, k) == true {
			t.Errorf("%s: %s is set", id(o), k)
		}
	}
	if sa := str(pod, "serviceAccountName"); sa == "" || find(objs, "ServiceAccount", sa) == nil {
		t.Errorf("%s: serviceAccountName %q is not a ServiceAccount of the kustomization", id(o), sa)
	}
	if str(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("%s: pod seccompProfile must be RuntimeDefault", id(o))
	}
	volumes := map[string]obj{}
	for _, v := range list(pod, "volumes") {
		volumes[str(v, "name")] = v.(obj)
		if cm := str(v, "configMap", "name"); cm != "" && find(objs, "ConfigMap", cm) == nil {
			t.Errorf("%s: volume %s names ConfigMap %s, which the kustomization does not have", id(o), str(v, "name"), cm)
		}
		if s := str(v, "secret", "secretName"); s != "" && certSecrets(objs)[s] == nil && !externalSecrets[s] {
			t.Errorf("%s: volume %s names Secret %s, which no Certificate writes and docs/deployment.md does not list", id(o), str(v, "name"), s)
		}
		if get(v, "hostPath") != nil && str(o, "kind") != "DaemonSet" {
			t.Errorf("%s: hostPath volume %s", id(o), str(v, "name"))
		}
	}
	for _, c := range containers(o) {
		cname := id(o) + " container " + str(c, "name")
		if str(c, "image") == "" || !strings.Contains(str(c, "image"), ":") {
			t.Errorf("%s: image %q needs a tag", cname, str(c, "image"))
		}
		nonRoot := get(c, "securityContext", "runAsNonRoot")
		if nonRoot == nil {
			nonRoot = get(pod, "securityContext", "runAsNonRoot")
		}
		if nonRoot != true {
			t.Errorf("%s: runAsNonRoot must be true", cname)
		}
		sc := get(c, "securityContext")
		if get(sc, "readOnlyRootFilesystem") != true {
			t.Errorf("%s: readOnlyRootFilesystem must be true", cname)
		}
		if get(sc, "allowPrivilegeEscalation") != false {
			t.Errorf("%s: allowPrivilegeEscalation must be false", cname)
		}
		if get(sc, "privileged") == true {
			t.Errorf("%s: privileged", cname)
		}
		var drop []string
		for _, d := range list(sc, "capabilities", "drop") {
			drop = append(drop, fmt.Sprint(d))
		}
		if !slices.Contains(drop, "ALL") || len(list(sc, "capabilities", "add")) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", cname)
		}
		for _, r := range []string{"cpu", "memory"} {
			if get(c, "resources", "requests", r) == nil {
				t.Errorf("%s: resources.requests.%s is required", cname, r)
			}
		}
		if get(c, "resources", "limits", "memory") == nil {
			t.Errorf("%s: resources.limits.memory is required", cname)
		}
		for _, m := range list(c, "volumeMounts") {
			v := volumes[str(m, "name")]
			if v == nil {
				t.Errorf("%s: volumeMount %s has no volume", cname, str(m, "name"))
			} else if get(v, "hostPath") != nil && get(m, "readOnly") != true {
				t.Errorf("%s: hostPath mount %s must be readOnly", cname, str(m, "mountPath"))
			}
		}
		if strings.Contains(str(c, "image"), "/promgate:") {
			checkGateway(t, objs, o, c, volumes)
		}
	}
}

// checkGateway checks a promgate container against its own configuration:
// probes on internal_listen, every named file mounted, and promgate check.
func checkGateway(t *testing.T, objs []obj, o, c obj, volumes map[string]obj) {
	t.Helper()
	cname := id(o) + " container " + str(c, "name")
	var configPath string
	for _, a := range list(c, "args") {
		if p, ok := strings.CutPrefix(fmt.Sprint(a), "--config="); ok {
			configPath = p
		}
	}
	if first := list(c, "args"); len(first) == 0 || first[0] != "serve" || configPath == "" {
		t.Fatalf("%s: args must be serve --config=FILE", cname)
	}
	root := t.TempDir()
	materialize(t, objs, c, volumes, root)
	raw, err := os.ReadFile(filepath.Join(root, configPath))
	if err != nil {
		t.Fatalf("%s: the configuration %s is not in a mounted ConfigMap: %v", cname, configPath, err)
	}
	var cfg obj
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", cname, err)
	}

	// Probes reach internal_listen, on an address the kubelet can reach.
	host, port, err := net.SplitHostPort(str(cfg, "internal_listen"))
	if err != nil || host != "0.0.0.0" {
		t.Errorf("%s: internal_listen %q must be 0.0.0.0:PORT for the kubelet's probes", cname, str(cfg, "internal_listen"))
	}
	_, publicPort, _ := net.SplitHostPort(str(cfg, "listen"))
	for probe, path := range map[string]string{"livenessProbe": "/-/healthy", "readinessProbe": "/-/ready", "startupProbe": "/-/healthy"} {
		p := get(c, probe, "httpGet")
		if p == nil {
			t.Errorf("%s: %s is required", cname, probe)
			continue
		}
		n, ok := containerPort(c, get(p, "port"))
		if !ok || strconv.Itoa(n) != port || str(p, "path") != path || (str(p, "scheme") != "" && str(p, "scheme") != "HTTP") {
			t.Errorf("%s: %s is %v %s, want GET %s on internal_listen port %s", cname, probe, get(p, "port"), str(p, "path"), path, port)
		}
	}
	if _, ok := containerPort(c, publicPort); !ok {
		t.Errorf("%s: listen port %s is not a containerPort", cname, publicPort)
	}

	// Every file the configuration names is mounted.
	var files []string
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case obj:
			for k, x := range v {
				walk(k, x)
			}
		case []any:
			for _, x := range v {
				walk(key, x)
			}
		case string:
			if strings.HasSuffix(key, "_file") || key == "policies" || (key == "path" && v != "-") {
				files = append(files, v)
			}
		}
	}
	walk("", cfg)
	mounts := map[string]bool{}
	for _, m := range list(c, "volumeMounts") {
		mounts[str(m, "mountPath")] = true
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		if !path.IsAbs(f) {
			t.Errorf("%s: %s is relative; name mounted files by absolute path", cname, f)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s: the configuration names %s, which no volumeMount provides", cname, f)
		}
	}

	// promgate check on the configuration, its paths moved under root.
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var move func(n *yaml.Node)
	move = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			for m := range mounts {
				if n.Value == m || strings.HasPrefix(n.Value, m+"/") {
					n.Value = filepath.Join(root, n.Value)
				}
			}
		}
		for _, x := range n.Content {
			move(x)
		}
	}
	move(&doc)
	moved, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	checkFile := filepath.Join(root, "check.yml")
	if err := os.WriteFile(checkFile, moved, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := promgate(t, "check", "--config="+checkFile)
	cm := configMapOf(t, volumes, c, configPath)
	if want, ok := notYet[cm]; ok {
		wantOut := fmt.Sprintf("%s:\n  - %s\n", checkFile, want)
		if code != 1 || !strings.HasPrefix(out, wantOut) {
			t.Errorf("%s: promgate check = exit %d\n%s\nwant exactly the not-yet refusal\n%s(when the feature has landed, delete its notYet entry)", cname, code, out, wantOut)
		}
	} else if code != 0 {
		t.Errorf("%s: promgate check (ConfigMap %s) = exit %d\n%s", cname, cm, code, out)
	}

	// Rego tests shipped beside a policy run under promgate policy test.
	policies := filepath.Join(root, str(cfg, "authz", "policies"))
	if tests, _ := filepath.Glob(filepath.Join(policies, "*_test.rego")); len(tests) > 0 {
		if out, code := promgate(t, "policy", "test", policies); code != 0 {
			t.Errorf("%s: promgate policy test = exit %d\n%s", cname, code, out)
		}
	}
}

// configMapOf returns the name of the ConfigMap mounted at file's folder.
func configMapOf(t *testing.T, volumes map[string]obj, c obj, file string) string {
	t.Helper()
	for _, m := range list(c, "volumeMounts") {
		if strings.HasPrefix(file, str(m, "mountPath")+"/") {
			return str(volumes[str(m, "name")], "configMap", "name")
		}
	}
	return ""
}

var (
	devPKIOnce sync.Once
	devPKI     map[string][]byte
	devPKIErr  error
)

// materialize writes c's ConfigMap and Secret volumes under root as the
// kubelet does: the files in a "..<timestamp>" folder, "..data" a symlink
// to it, and each key a symlink through "..data". Certificate Secrets get
// promgate certs dev output; other Secrets random values for their items.
func materialize(t *testing.T, objs []obj, c obj, volumes map[string]obj, root string) {
	t.Helper()
	bin := binaries(t)
	devPKIOnce.Do(func() {
		dir := filepath.Join(bin, "pki")
		if out, err := exec.Command(filepath.Join(bin, "promgate"), "certs", "dev", "--out", dir).CombinedOutput(); err != nil {
			devPKIErr = fmt.Errorf("promgate certs dev: %w\n%s", err, out)
			return
		}
		pki := map[string][]byte{}
		for key, f := range map[string]string{"tls.crt": "server.crt", "tls.key": "server.key", "ca.crt": "ca.crt"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				devPKIErr = err
				return
			}
			pki[key] = b
		}
		devPKI = pki
	})
	if devPKIErr != nil {
		t.Fatal(devPKIErr)
	}
	for _, m := range list(c, "volumeMounts") {
		v := volumes[str(m, "name")]
		files := map[string][]byte{}
		switch {
		case get(v, "configMap") != nil:
			cm := find(objs, "ConfigMap", str(v, "configMap", "name"))
			data := stringMap(get(cm, "data"))
			if items := list(v, "configMap", "items"); len(items) > 0 {
				for _, it := range items {
					files[str(it, "path")] = []byte(data[str(it, "key")])
				}
			} else {
				for k, d := range data {
					files[k] = []byte(d)
				}
			}
		case get(v, "secret") != nil:
			name := str(v, "secret", "secretName")
			if certSecrets(objs)[name] != nil {
				maps.Copy(files, devPKI)
				break
			}
			items := list(v, "secret", "items")
			if len(items) == 0 {
				t.Fatalf("volume %s: list the items of Secret %s, so that its keys are documented", str(v, "name"), name)
			}
			for _, it := range items {
				b := make([]byte, 32)
				_, _ = rand.Read(b)
				files[str(it, "path")] = []byte(hex.EncodeToString(b))
			}
		case get(v, "emptyDir") != nil:
		default:
			continue
		}
		dir := filepath.Join(root, str(m, "mountPath"))
		stamp := filepath.Join(dir, "..2026_01_02_03_04_05.000000001")
		if err := os.MkdirAll(stamp, 0o755); err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			continue
		}
		if err := os.Symlink(filepath.Base(stamp), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		for k, b := range files {
			if err := os.WriteFile(filepath.Join(stamp, k), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func checkService(t *testing.T, objs []obj, o obj) {
	t.Helper()
	sel := stringMap(get(o, "spec", "selector"))
	pods := podsOf(objs, sel)
	if len(pods) == 0 {
		t.Errorf("%s: selector %v matches no pods of the kustomization", id(o), sel)
		return
	}
	for _, p := range list(o, "spec", "ports") {
		found := false
		for _, w := range pods {
			for _, c := range containers(w) {
				n, ok := containerPort(c, get(p, "targetPort"))
				found = found || (ok && n > 0)
			}
		}
		if !found || str(p, "name") == "" {
			t.Errorf("%s: port %s targets %v, which is no containerPort of its pods", id(o), str(p, "name"), get(p, "targetPort"))
		}
	}
}

func checkPDB(t *testing.T, objs []obj, o obj) {
	t.Helper()
	pods := podsOf(objs, stringMap(get(o, "spec", "selector", "matchLabels")))
	if len(pods) != 1 {
		t.Fatalf("%s: selects %d workloads, want 1", id(o), len(pods))
	}
	minAvail, _ := get(o, "spec", "minAvailable").(int)
	replicas, _ := get(pods[0], "spec", "replicas").(int)
	if minAvail < 1 || minAvail >= replicas {
		t.Errorf("%s: minAvailable %d with %d replicas: want at least 1 and fewer than the replicas, so that nodes can drain", id(o), minAvail, replicas)
	}
}

// checkPeer checks that a NetworkPolicy's pod selector names pods of the
// kustomization or a known outside workload, and returns our pods it names.
func checkPeer(t *testing.T, objs []obj, o obj, sel map[string]string) []obj {
	t.Helper()
	if pods := podsOf(objs, sel); len(pods) > 0 {
		return pods
	}
	for _, e := range externalPods {
		if maps.Equal(sel, e) {
			return nil
		}
	}
	t.Errorf("%s: pod selector %v matches neither pods of the kustomization nor %v", id(o), sel, externalPods)
	return nil
}

func checkNetworkPolicy(t *testing.T, objs []obj, o obj) {
	t.Helper()
	targets := checkPeer(t, objs, o, stringMap(get(o, "spec", "podSelector", "matchLabels")))
	for _, dir := range []string{"ingress", "egress"} {
		for _, r := range list(o, "spec", dir) {
			for _, peer := range append(list(r, "from"), list(r, "to")...) {
				if sel := get(peer, "podSelector", "matchLabels"); sel != nil {
					checkPeer(t, objs, o, stringMap(sel))
				}
			}
			if dir != "ingress" {
				continue
			}
			for _, p := range list(r, "ports") {
				for _, w := range targets {
					found := false
					for _, c := range containers(w) {
						_, ok := containerPort(c, get(p, "port"))
						found = found || ok
					}
					if !found {
						t.Errorf("%s: ingress port %v is no containerPort of %s", id(o), get(p, "port"), id(w))
					}
				}
			}
		}
	}
	// A policy for our own pods names both directions: a gateway's egress
	// is part of its confinement.
	if len(targets) > 0 {
		var types []string
		for _, x := range list(o, "spec", "policyTypes") {
			types = append(types, fmt.Sprint(x))
		}
		if !slices.Contains(types, "Ingress") || !slices.Contains(types, "Egress") {
			t.Errorf("%s: policyTypes %v, want Ingress and Egress", id(o), types)
		}
	}
}

func servicePort(svc obj, name string) bool {
	for _, p := range list(svc, "spec", "ports") {
		if str(p, "name") == name {
			return true
		}
	}
	return false
}

func checkIngress(t *testing.T, objs []obj, o obj) {
	t.Helper()
	for _, r := range list(o, "spec", "rules") {
		for _, p := range list(r, "http", "paths") {
			svc := find(objs, "Service", str(p, "backend", "service", "name"))
			if svc == nil || !servicePort(svc, str(p, "backend", "service", "port", "name")) {
				t.Errorf("%s: backend %v is not a Service port of the kustomization", id(o), get(p, "backend"))
			}
		}
	}
	if str(o, "metadata", "annotations", "nginx.ingress.kubernetes.io/ssl-passthrough") != "true" {
		t.Errorf("%s: TLS must pass through to the gateway, which verifies client certificates itself", id(o))
	}
}

func checkServiceMonitor(t *testing.T, objs []obj, o obj) {
	t.Helper()
	sel := stringMap(get(o, "spec", "selector", "matchLabels"))
	var svcs []obj
	for _, s := range objs {
		if str(s, "kind") == "Service" && selects(sel, stringMap(get(s, "metadata", "labels"))) {
			svcs = append(svcs, s)
		}
	}
	if len(svcs) != 1 {
		t.Fatalf("%s: selects %d Services, want 1", id(o), len(svcs))
	}
	certs := certSecrets(objs)
	for _, e := range list(o, "spec", "endpoints") {
		if !servicePort(svcs[0], str(e, "port")) {
			t.Errorf("%s: endpoint port %q is not a port of %s", id(o), str(e, "port"), id(svcs[0]))
		}
		if str(e, "scheme") == "https" && str(e, "tlsConfig", "serverName") == "" {
			t.Errorf("%s: https endpoint without tlsConfig.serverName", id(o))
		}
		for _, ref := range []any{
			get(e, "tlsConfig", "ca", "secret"), get(e, "tlsConfig", "cert", "secret"), get(e, "tlsConfig", "keySecret"),
			get(e, "oauth2", "clientId", "secret"), get(e, "oauth2", "clientSecret"),
		} {
			if name := str(ref, "name"); ref != nil && certs[name] == nil && !externalSecrets[name] {
				t.Errorf("%s: Secret %s is written by no Certificate and not listed in docs/deployment.md", id(o), name)
			}
		}
	}
}

// checkDatasources checks Grafana's provisioning file: a prometheus
// datasource pointing at the gateway's Service, over verified TLS, either
// forwarding the user's OAuth token or with Grafana's client certificate.
func checkDatasources(t *testing.T, objs []obj, o obj) {
	t.Helper()
	for key, text := range stringMap(get(o, "data")) {
		var prov obj
		if err := yaml.Unmarshal([]byte(text), &prov); err != nil {
			t.Fatalf("%s %s: %v", id(o), key, err)
		}
		if get(prov, "apiVersion") != 1 || len(list(prov, "datasources")) == 0 {
			t.Errorf("%s %s: want apiVersion 1 and datasources", id(o), key)
		}
		for _, d := range list(prov, "datasources") {
			name := id(o) + " datasource " + str(d, "uid")
			u, err := url.Parse(str(d, "url"))
			if err != nil || u.Scheme != "https" || str(d, "type") != "prometheus" || str(d, "access") != "proxy" {
				t.Errorf("%s: want type prometheus, access proxy and an https url; got %v", name, d)
				continue
			}
			svcName, rest, _ := strings.Cut(u.Hostname(), ".")
			svc := find(objs, "Service", svcName)
			if svc == nil || rest != str(svc, "metadata", "namespace")+".svc" {
				t.Errorf("%s: url %s is not a Service of the kustomization", name, u)
			} else {
				found := false
				for _, p := range list(svc, "spec", "ports") {
					found = found || (strconv.Itoa(get(p, "port").(int)) == u.Port() && str(p, "name") == "https")
				}
				if !found {
					t.Errorf("%s: url %s is not the https port of %s", name, u, id(svc))
				}
			}
			serverName := str(d, "jsonData", "serverName")
			found := false
			for _, c := range certSecrets(objs) {
				for _, n := range list(c, "spec", "dnsNames") {
					found = found || n == serverName
				}
			}
			if !found || get(d, "jsonData", "tlsAuthWithCACert") != true || !strings.HasPrefix(str(d, "secureJsonData", "tlsCACert"), "$__file{") {
				t.Errorf("%s: TLS must be verified against the CA, with a serverName (%q) that the gateway's certificate carries", name, serverName)
			}
			oauth := get(d, "jsonData", "oauthPassThru") == true
			mtls := get(d, "jsonData", "tlsAuth") == true
			if oauth == mtls {
				t.Errorf("%s: want exactly one of oauthPassThru and tlsAuth", name)
			}
			if mtls && (!strings.HasPrefix(str(d, "secureJsonData", "tlsClientCert"), "$__file{") || !strings.HasPrefix(str(d, "secureJsonData", "tlsClientKey"), "$__file{")) {
				t.Errorf("%s: the client certificate and key must be read from files ($__file{...}), never inline", name)
			}
		}
	}
}

// TestDefaultPolicyInSync checks that the policy shipped in the Ingress
// backend's ConfigMap is the repository's default policy, byte for byte.
func TestDefaultPolicyInSync(t *testing.T) {
	want, err := os.ReadFile("../policies/policy.rego")
	if err != nil {
		t.Fatal(err)
	}
	cm := readObjects(t, "kubernetes/ingress-backend/configmap-policies.yaml")
	if got := str(cm[0], "data", "policy.rego"); got != string(want) {
		t.Errorf("kubernetes/ingress-backend/configmap-policies.yaml policy.rego differs from policies/policy.rego:\n%s", cmp.Diff(string(want), got))
	}
}

// TestGrafanaDatasources checks that the grafana-datasource kustomization
// provisions both datasource kinds the issue asks for.
func TestGrafanaDatasources(t *testing.T) {
	objs := render(t, "kubernetes/grafana-datasource", map[string]bool{})
	var kinds []string
	for _, o := range objs {
		if str(o, "metadata", "labels", "grafana_datasource") == "" {
			continue
		}
		for _, text := range stringMap(get(o, "data")) {
			var prov obj
			if err := yaml.Unmarshal([]byte(text), &prov); err != nil {
				t.Fatal(err)
			}
			for _, d := range list(prov, "datasources") {
				switch {
				case get(d, "jsonData", "oauthPassThru") == true:
					kinds = append(kinds, "oauth")
				case get(d, "jsonData", "tlsAuth") == true:
					kinds = append(kinds, "mtls")
				}
			}
		}
	}
	slices.Sort(kinds)
	if diff := cmp.Diff([]string{"mtls", "oauth"}, kinds); diff != "" {
		t.Errorf("datasources (-want +got):\n%s", diff)
	}
}

// TestDetectorsRule checks that the checked-in PrometheusRule is what
// promgate detectors export --format prometheusrule prints now. With -update
// it rewrites the file.
func TestDetectorsRule(t *testing.T) {
	const file = "kubernetes/detectors/prometheusrule.yaml"
	// The rule file is standard output alone: the export says on standard
	// error which detectors it left out for the target Prometheus.
	out, code := promgateStdout(t, "detectors", "export", "--format", "prometheusrule")
	if code == 2 && strings.Contains(out, `unknown command "detectors"`) {
		// The detectors command is its own issue. Until it lands, the
		// refusal is exactly this, and the checked-in file cannot be
		// compared; once it lands this branch stops matching and the
		// comparison below runs.
		t.Skipf("promgate detectors is not built yet: %s", strings.SplitN(out, "\n", 2)[0])
	}
	if code != 0 {
		t.Fatalf("promgate detectors export = exit %d\n%s", code, out)
	}
	if *update {
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v; generate it with go test ./deploy/ -run TestDetectorsRule -update", err)
	}
	if diff := cmp.Diff(out, string(got)); diff != "" {
		t.Errorf("%s is stale; regenerate it with go test ./deploy/ -run TestDetectorsRule -update (-export +file):\n%s", file, diff)
	}
}

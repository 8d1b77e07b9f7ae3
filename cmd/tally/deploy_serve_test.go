package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// built is what kustomize build of one of the shipped kustomizations gives,
// each object strict-decoded (an unknown field anywhere is an error).
type built struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	configMaps  []corev1.ConfigMap
	secrets     []corev1.Secret
	ingresses   []networkingv1.Ingress
	kinds       []string
}

func kustomizeBuild(t *testing.T, dir string) built {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var b built
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		where := fmt.Sprintf("kustomize build %s: %s %s", dir, tm.Kind, r.GetName())
		b.kinds = append(b.kinds, tm.Kind+"/"+r.GetName())
		switch tm.Kind {
		case "Deployment":
			b.deployments = append(b.deployments, strictAs[appsv1.Deployment](t, doc, where))
		case "Service":
			b.services = append(b.services, strictAs[corev1.Service](t, doc, where))
		case "ConfigMap":
			b.configMaps = append(b.configMaps, strictAs[corev1.ConfigMap](t, doc, where))
		case "Secret":
			b.secrets = append(b.secrets, strictAs[corev1.Secret](t, doc, where))
		case "ServiceAccount":
			strictAs[corev1.ServiceAccount](t, doc, where)
		case "Ingress":
			b.ingresses = append(b.ingresses, strictAs[networkingv1.Ingress](t, doc, where))
		case "CronJob":
		default:
			t.Fatalf("%s: unexpected kind", where)
		}
	}
	return b
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func portOf(t *testing.T, listen string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(listen)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("listen %q: not host:port", listen)
	}
	return int32(n)
}

// The shipped tally serve manifests, built by kustomize, run as Kubernetes
// would run them: the pod's args and environment, tally.yaml from the
// ConfigMap and the console's tokens from the Secret as mounted files. Only
// what a laptop cannot have differs: storage is a local directory, the
// listeners bind free ports, and no period is caught up on start.
func TestTheShippedServeManifestsStartWithTheConsoleBehindItsLoginAndProbesAndScrapesOnTheRoutesOutsideIt(t *testing.T) {
	kustomizeBuild(t, "../../deploy/kubernetes") // the CronJobs' variant builds too
	b := kustomizeBuild(t, "../../deploy/kubernetes/serve")
	if len(b.deployments) != 1 || len(b.configMaps) != 1 || len(b.services) != 1 {
		t.Fatalf("kustomize build deploy/kubernetes/serve: %v, want one Deployment, ConfigMap and Service", b.kinds)
	}
	d, svc := b.deployments[0], b.services[0]
	pod := d.Spec.Template.Spec
	c := checkPod(t, d.Name, pod)
	secrets := map[string]corev1.Secret{}
	for _, s := range b.secrets {
		secrets[s.Name] = s
	}

	// tally.yaml as the pod reads it; the listeners as the container declares them.
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(b.configMaps[0].Data["tally.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	serve := cfg["serve"].(map[string]any)
	ports := map[string]int32{} // container port name → port
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	consolePort, publicPort := portOf(t, serve["listen"].(string)), portOf(t, serve["public_listen"].(string))
	if ports["http"] != consolePort || ports["public"] != publicPort {
		t.Fatalf("container ports %v, but tally.yaml listens on %d (console) and %d (public)", ports, consolePort, publicPort)
	}
	local := map[int32]int{consolePort: freePort(t), publicPort: freePort(t)} // container port → this test's
	serve["listen"] = fmt.Sprintf(":%d", local[consolePort])                  // all interfaces, as in the pod
	serve["public_listen"] = fmt.Sprintf(":%d", local[publicPort])

	// Mounts: each volume's files under a temp dir at the same path.
	root := t.TempDir()
	mounted := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != m.Name {
				continue
			}
			dir := mounted(m.MountPath)
			os.MkdirAll(dir, 0o700)
			switch {
			case v.Secret != nil:
				s, ok := secrets[v.Secret.SecretName]
				if !ok {
					t.Fatalf("volume %s: Secret %s is not in the build", v.Name, v.Secret.SecretName)
				}
				for k, val := range s.StringData {
					os.WriteFile(filepath.Join(dir, k), []byte(val), 0o400)
				}
			case v.ConfigMap != nil: // written below, with the test's changes
			}
		}
	}
	auth := serve["auth"].(map[string]any)
	tokens := map[string]string{}
	for _, tk := range auth["tokens"].([]any) {
		tk := tk.(map[string]any)
		path := tk["token_file"].(string)
		b, err := os.ReadFile(mounted(path))
		if err != nil {
			t.Fatalf("token %s: %s is not a file of a mounted Secret: %v", tk["name"], path, err)
		}
		tokens[tk["name"].(string)] = strings.TrimSpace(string(b))
		tk["token_file"] = mounted(path)
	}
	data := filepath.Join(root, "data")
	cfg["storage"] = map[string]any{"type": "local", "path": data}
	out, _ := yaml.Marshal(cfg)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root, "TALLY_SERVE_CATCH_UP=0"}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			continue // GOMEMLIMIT from the container's limit
		}
		if e.Name == "TALLY_CONFIG" {
			os.MkdirAll(filepath.Dir(mounted(e.Value)), 0o700)
			os.WriteFile(mounted(e.Value), out, 0o600)
			e.Value = mounted(e.Value)
		}
		env = append(env, e.Name+"="+e.Value)
	}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			for k, v := range secrets[ef.SecretRef.Name].StringData {
				env = append(env, k+"="+v)
			}
		}
	}

	// Without the Deployment's login (the auth type it sets), the same pod is
	// refused: a console beyond loopback without a login never starts.
	var noLogin []string
	for _, e := range env {
		if !strings.HasPrefix(e, "TALLY_SERVE_AUTH_TYPE=") {
			noLogin = append(noLogin, e)
		}
	}
	refused := exec.Command(tallyBin, c.Args...)
	refused.Env = noLogin
	if out, err := refused.CombinedOutput(); exitOf(err) != exitUsage || !strings.Contains(string(out), "serve.auth") {
		t.Fatalf("the serve pod without its login: %v, want exit 2 naming serve.auth:\n%s", err, out)
	}

	logs := startPod(t, c.Args, env)
	at := func(port int32, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", local[port], path) }
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	get := func(u string, cookie string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", "text/html") // as a browser asks for a page
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// The probes, as the kubelet sends them: no credentials, on their port.
	probe := func(name string, p *corev1.Probe) {
		if p == nil || p.HTTPGet == nil {
			t.Fatalf("%s: no HTTP probe", name)
		}
		port := ports[p.HTTPGet.Port.StrVal]
		if port != publicPort {
			t.Errorf("%s probes port %v, not the public listener (%d): with the console behind its login it would fail", name, p.HTTPGet.Port.String(), publicPort)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, _ := get(at(port, p.HTTPGet.Path), "")
			if code == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET %s answers %d after 30s\n%s", name, p.HTTPGet.Path, code, logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	probe("readinessProbe", c.ReadinessProbe)
	probe("livenessProbe", c.LivenessProbe)

	// The ServiceMonitor scrapes the Service's port, which reaches /metrics
	// without a login.
	smDoc, err := os.ReadFile("../../deploy/kubernetes/monitoring/servicemonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sm := strictAs[monitoringv1.ServiceMonitor](t, smDoc, "servicemonitor.yaml")
	for _, ep := range sm.Spec.Endpoints {
		var target int32
		for _, sp := range svc.Spec.Ports {
			if sp.Name == ep.Port {
				target = ports[sp.TargetPort.StrVal]
			}
		}
		if target == 0 {
			t.Fatalf("the ServiceMonitor scrapes port %q, which the Service %s does not name", ep.Port, svc.Name)
		}
		if code, body := get(at(target, ep.Path), ""); code != http.StatusOK || !strings.Contains(body, "tally_period_expected_timestamp_seconds") {
			t.Errorf("the ServiceMonitor's scrape of %s%s: %d", ep.Port, ep.Path, code)
		}
	}
	// The other route outside the login answers on the public port; the
	// console's pages do not exist there.
	if code, _ := get(at(publicPort, "/unsubscribe?token=x"), ""); code == http.StatusUnauthorized || code == http.StatusNotFound || code == 0 {
		t.Errorf("/unsubscribe on the public port: %d, want it answered without a login", code)
	}
	for _, path := range []string{"/runs", "/analytics", "/files/US/inventory/x"} {
		if code, _ := get(at(publicPort, path), ""); code != http.StatusNotFound {
			t.Errorf("%s on the public port: %d, want 404 (only the routes outside the login are served there)", path, code)
		}
	}
	// The console: a page goes to /login, anything else is 401, until a
	// named token from the Secret logs in.
	if code, _ := get(at(consolePort, "/runs"), ""); code != http.StatusSeeOther {
		t.Errorf("/runs without a login: %d, want 303 to /login", code)
	}
	if code, _ := get(at(consolePort, "/files/US/inventory/x"), ""); code != http.StatusUnauthorized {
		t.Errorf("a download without a login: %d, want 401", code)
	}
	resp, err := noRedirect.PostForm(at(consolePort, "/login"), url.Values{"token": {tokens["operator"]}, "next": {"/runs"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || cookie == "" {
		t.Fatalf("log in with the Secret's operator token: %d, cookie %q", resp.StatusCode, cookie)
	}
	cookie, _, _ = strings.Cut(cookie, ";")
	if code, body := get(at(consolePort, "/runs"), cookie); code != http.StatusOK || !strings.Contains(body, "operator") {
		t.Errorf("/runs logged in: %d (want 200 naming the operator)", code)
	}
}

// The receiver Deployment, added to the CronJobs' kustomization as its
// comment says, starts with the shipped config plus a webhook partner: its
// probes answer on the port they name, and a delivery signed with the
// Secret's token, sent where the Ingress and Service route it, is stored.
func TestTheShippedWebhookReceiverStartsAndStoresASignedDeliveryRoutedByItsIngressAndService(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../deploy/kubernetes")); err != nil {
		t.Fatal(err)
	}
	k := must(os.ReadFile(filepath.Join(dir, "kustomization.yaml")))
	k = []byte(strings.Replace(string(k), "  - cronjobs.yaml\n", "  - cronjobs.yaml\n  - webhook-receiver.yaml\n", 1))
	os.WriteFile(filepath.Join(dir, "kustomization.yaml"), k, 0o644)
	b := kustomizeBuild(t, dir)
	var d *appsv1.Deployment
	for i := range b.deployments {
		if b.deployments[i].Name == "tally-webhook-receiver" {
			d = &b.deployments[i]
		}
	}
	if d == nil || len(b.ingresses) != 1 {
		t.Fatalf("build: %v, want the receiver's Deployment and Ingress", b.kinds)
	}
	pod := d.Spec.Template.Spec
	c := checkPod(t, d.Name, pod)
	var svc corev1.Service
	for _, s := range b.services {
		if s.Name == "tally-webhook-receiver" {
			svc = s
		}
	}
	ing := b.ingresses[0].Spec.Rules[0].HTTP.Paths[0]
	if ing.Backend.Service.Name != svc.Name || !strings.HasPrefix("/webhooks/webex/cdr/P1", ing.Path) {
		t.Fatalf("the Ingress routes %s to %s, not the receiver's route to its Service", ing.Path, ing.Backend.Service.Name)
	}
	containerPorts := map[string]int32{}
	for _, p := range c.Ports {
		containerPorts[p.Name] = p.ContainerPort
	}
	if sp := svc.Spec.Ports[0]; containerPorts[sp.TargetPort.StrVal] == 0 || sp.Name != ing.Backend.Service.Port.Name {
		t.Fatalf("the Service's port %s targets %s, which the container does not name", sp.Name, sp.TargetPort.StrVal)
	}

	root := t.TempDir()
	mounted := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	secrets := map[string]corev1.Secret{}
	for _, s := range b.secrets {
		secrets[s.Name] = s
	}
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				os.MkdirAll(mounted(m.MountPath), 0o700)
				for k, val := range secrets[v.Secret.SecretName].StringData {
					os.WriteFile(filepath.Join(mounted(m.MountPath), k), []byte(val), 0o400)
				}
			}
		}
	}
	secret := strings.TrimSpace(string(must(os.ReadFile(mounted("/etc/tally-webhook/P1")))))
	var cfg map[string]any
	for _, cm := range b.configMaps {
		yaml.Unmarshal([]byte(cm.Data["tally.yaml"]), &cfg)
	}
	org := "4b1c6a52-8f0e-4d7a-9a35-61f0c2d8e901"
	data := filepath.Join(root, "data")
	cfg["storage"] = map[string]any{"type": "local", "path": data}
	cfg["source"] = map[string]any{"type": "webex", "webex": map[string]any{"regions": map[string]string{org: "EU"},
		"partners": []map[string]string{{"id": "P1", "name": "Partner One", "calls": "webhook", "webhook_secret_file": mounted("/etc/tally-webhook/P1")}}}}
	out, _ := yaml.Marshal(cfg)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			continue
		}
		if e.Name == "TALLY_CONFIG" {
			os.MkdirAll(filepath.Dir(mounted(e.Value)), 0o700)
			os.WriteFile(mounted(e.Value), out, 0o600)
			e.Value = mounted(e.Value)
		}
		env = append(env, e.Name+"="+e.Value)
	}
	port := freePort(t)
	args := append([]string{}, c.Args...)
	for i, a := range args {
		if a == fmt.Sprintf(":%d", containerPorts["public"]) {
			args[i] = fmt.Sprintf("127.0.0.1:%d", port)
		}
	}
	logs := startPod(t, args, env)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if containerPorts[p.HTTPGet.Port.StrVal] != containerPorts["public"] {
			t.Fatalf("a probe on port %s, not the receiver's", p.HTTPGet.Port.String())
		}
		waitFor(t, "the receiver's "+p.HTTPGet.Path, 20*time.Second, func() bool {
			resp, err := http.Get(base + p.HTTPGet.Path)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
	body := []byte(`{"items":[{"Report ID":"r1","Org UUID":"` + org + `","Start time":"2026-11-21T10:00:00.000Z","Duration":60,"Report time":"2026-11-21T10:01:00.000Z"}]}`)
	if code := post(strings.TrimPrefix(base, "http://"), "P1", body, []byte(secret)); code != 200 {
		t.Fatalf("a delivery signed with the Secret's token: %d\n%s", code, logs.String())
	}
	if stored, _ := filepath.Glob(filepath.Join(data, "raw", "webex-cdr", "partner=P1", "day=2026-11-21", "*.jsonl")); len(stored) != 1 {
		t.Fatalf("stored %v, want the delivery in the EU store's day folder", stored)
	}
}

// startPod starts tally as a container would, with args and env only; it is
// interrupted when the test ends. Its output is returned.
func startPod(t *testing.T, args, env []string) *lockedBuffer {
	t.Helper()
	cmd := exec.Command(tallyBin, args...)
	cmd.Env = env
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	return logs
}

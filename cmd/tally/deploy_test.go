package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"tally/clock"
	"tally/config"
)

// manifests strict-decodes every document in deploy/kubernetes into its typed
// object: an unknown field anywhere is an error.
func manifests(t *testing.T) (cronjobs []batchv1.CronJob, jobs []batchv1.Job, configMaps []corev1.ConfigMap, deployments []appsv1.Deployment, rules []monitoringv1.PrometheusRule) {
	t.Helper()
	paths, _ := filepath.Glob("../../deploy/kubernetes/*.yaml")
	more, _ := filepath.Glob("../../deploy/kubernetes/*/*.yaml")
	paths = append(paths, more...)
	if len(paths) == 0 {
		t.Fatal("no manifests in deploy/kubernetes")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---")) {
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s doc %d: %v", p, i, err)
			}
			where := fmt.Sprintf("%s doc %d (%s)", p, i, tm.Kind)
			switch tm.Kind {
			case "CronJob":
				cronjobs = append(cronjobs, strictAs[batchv1.CronJob](t, doc, where))
			case "Job":
				jobs = append(jobs, strictAs[batchv1.Job](t, doc, where))
			case "ConfigMap":
				configMaps = append(configMaps, strictAs[corev1.ConfigMap](t, doc, where))
			case "Deployment":
				deployments = append(deployments, strictAs[appsv1.Deployment](t, doc, where))
			case "Service":
				strictAs[corev1.Service](t, doc, where)
			case "Secret":
				strictAs[corev1.Secret](t, doc, where)
			case "ServiceAccount":
				strictAs[corev1.ServiceAccount](t, doc, where)
			case "Kustomization", "Component":
				k := strictAs[kustomization](t, doc, where)
				for _, r := range k.Resources {
					if _, err := os.Stat(filepath.Join(filepath.Dir(p), r)); err != nil {
						t.Errorf("kustomization resource %s: %v", r, err)
					}
				}
			case "Ingress":
				strictAs[networkingv1.Ingress](t, doc, where)
			case "ServiceMonitor":
				strictAs[monitoringv1.ServiceMonitor](t, doc, where)
			case "PrometheusRule":
				rules = append(rules, strictAs[monitoringv1.PrometheusRule](t, doc, where))
			default:
				t.Fatalf("%s doc %d: unexpected kind %q", p, i, tm.Kind)
			}
		}
	}
	return
}

// strictAs decodes doc into a T; an unknown field is an error.
func strictAs[T any](t *testing.T, doc []byte, where string) T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return v
}

// kustomization is the part of kustomization.yaml the deploy uses.
type kustomization struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Labels     []map[string]any `json:"labels"`
	Resources  []string         `json:"resources"`
	Images     []map[string]any `json:"images"`
}

func stripComments(b []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

func checkPod(t *testing.T, name string, spec corev1.PodSpec) corev1.Container {
	t.Helper()
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Errorf("%s: enableServiceLinks must be false (a Service's FOO_PORT=tcp://… variables would reach tally's environment)", name)
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != "" {
		t.Errorf("%s: restartPolicy %s, want Never (the Job retries, under its podFailurePolicy)", name, spec.RestartPolicy)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s: pod must run as non-root", name)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", name, len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: container needs a read-only root filesystem, no privilege escalation and all capabilities dropped", name)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("%s: memory requests and limits are required", name)
	}
	return c
}

func TestEveryManifestStrictDecodesAndEachCronJobRunsItsJobOnItsScheduleInCode(t *testing.T) {
	cronjobs, jobs, configMaps, deployments, rules := manifests(t)
	_, reg, err := newTestApp(t).build()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, cj := range cronjobs {
		s := cj.Spec
		c := checkPod(t, cj.Name, s.JobTemplate.Spec.Template.Spec)
		if len(c.Args) != 4 || c.Args[0] != "run" || c.Args[2] != "--period" || c.Args[3] != "latest" {
			t.Fatalf("%s: args %v, want run JOB --period latest", cj.Name, c.Args)
		}
		job := c.Args[1]
		seen[job] = true
		if want := reg.Schedule(job); want == "" || s.Schedule != want {
			t.Errorf("%s: schedule %q, but job %s's schedule in code is %q", cj.Name, s.Schedule, job, want)
		}
		if s.TimeZone == nil || *s.TimeZone != "Etc/UTC" {
			t.Errorf("%s: timeZone must be Etc/UTC", cj.Name)
		}
		if s.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			t.Errorf("%s: concurrencyPolicy %s, want Forbid", cj.Name, s.ConcurrencyPolicy)
		}
		if s.StartingDeadlineSeconds == nil || s.SuccessfulJobsHistoryLimit == nil || s.FailedJobsHistoryLimit == nil || s.JobTemplate.Spec.BackoffLimit == nil {
			t.Errorf("%s: startingDeadlineSeconds, history limits and backoffLimit are required", cj.Name)
		}
		if !failsOnExit2(s.JobTemplate.Spec.PodFailurePolicy) {
			t.Errorf("%s: its podFailurePolicy must not retry exit 2 (config and usage errors)", cj.Name)
		}
		if b := s.JobTemplate.Spec.BackoffLimit; b == nil || *b != 0 {
			t.Errorf("%s: backoffLimit must be 0: tally retries itself, Kubernetes retries would multiply its attempts and failure emails", cj.Name)
		}
	}
	for _, j := range reg.Jobs() {
		if !seen[j.Name()] {
			t.Errorf("job %s has no CronJob", j.Name())
		}
	}
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs, want the backfill Indexed Job", len(jobs))
	}
	bj := jobs[0]
	c := checkPod(t, bj.Name, bj.Spec.Template.Spec)
	if bj.Spec.CompletionMode == nil || *bj.Spec.CompletionMode != batchv1.IndexedCompletion || bj.Spec.Completions == nil {
		t.Fatal("the backfill Job must be Indexed")
	}
	if i := slices.Index(c.Args, "--shard"); i < 0 || c.Args[i+1] != "$(JOB_COMPLETION_INDEX)/4" || *bj.Spec.Completions != 4 || c.Args[0] != "backfill" {
		t.Errorf("backfill args %v: want backfill … --shard $(JOB_COMPLETION_INDEX)/N with N = completions (%d)", c.Args, *bj.Spec.Completions)
	}
	if !failsOnExit2(bj.Spec.PodFailurePolicy) {
		t.Error("the backfill Job must not retry exit 2")
	}
	var serves []appsv1.Deployment
	for _, d := range deployments {
		if d.Name != "tally-webhook-receiver" { // runs no job (its own test)
			serves = append(serves, d)
		}
	}
	if len(serves) != 1 {
		t.Fatalf("%d Deployments, want tally serve's", len(serves))
	}
	d := serves[0]
	c = checkPod(t, d.Name, d.Spec.Template.Spec)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || len(c.Args) == 0 || c.Args[0] != "serve" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("serve Deployment: one replica running tally serve with a /healthz probe")
	}
	if len(configMaps) != 1 {
		t.Fatalf("%d ConfigMaps", len(configMaps))
	}
	// The freshness rule compares expected with last success per job, so a job
	// that never succeeded is caught.
	if len(rules) != 1 || len(rules[0].Spec.Groups) == 0 || len(rules[0].Spec.Groups[0].Rules) == 0 ||
		!strings.Contains(rules[0].Spec.Groups[0].Rules[0].Expr.String(), "tally_period_expected_timestamp_seconds") {
		t.Errorf("want one PrometheusRule alerting on tally_period_expected_timestamp_seconds")
	}
	// Every pod that may run sync-clusters (its CronJob, serve, a backfill)
	// has room in /tmp for the files source's sort of a 100K-customer day
	// (about 2 GiB, README "Bring your own data") and its writers' spill.
	sortRoom := resource.MustParse("4Gi")
	pods := map[string]corev1.PodSpec{d.Name: d.Spec.Template.Spec, bj.Name: bj.Spec.Template.Spec}
	for _, cj := range cronjobs {
		if c := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]; c.Args[1] == "sync-clusters" {
			pods[cj.Name] = cj.Spec.JobTemplate.Spec.Template.Spec
		}
	}
	for name, spec := range pods {
		var limit *resource.Quantity
		for _, v := range spec.Volumes {
			for _, m := range spec.Containers[0].VolumeMounts {
				if m.Name == v.Name && m.MountPath == "/tmp" && v.EmptyDir != nil {
					limit = v.EmptyDir.SizeLimit
				}
			}
		}
		if limit == nil || limit.Cmp(sortRoom) < 0 {
			t.Errorf("%s: /tmp is %v, want an emptyDir of at least %s (the files source sorts a day there)", name, limit, sortRoom.String())
		}
	}
	// The ConfigMap's tally.yaml is a valid config.
	p := filepath.Join(t.TempDir(), "tally.yaml")
	os.WriteFile(p, []byte(configMaps[0].Data["tally.yaml"]), 0o644)
	if _, err := config.Load(p, nil); err != nil {
		t.Fatalf("the ConfigMap's tally.yaml: %v", err)
	}
}

func failsOnExit2(p *batchv1.PodFailurePolicy) bool {
	if p == nil {
		return false
	}
	for _, r := range p.Rules {
		if r.Action == batchv1.PodFailurePolicyActionFailJob && r.OnExitCodes != nil && r.OnExitCodes.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && slices.Contains(r.OnExitCodes.Values, 2) {
			return true
		}
	}
	return false
}

// newTestApp is an app on the embedded defaults, storage in a temp dir.
func newTestApp(t *testing.T) *app {
	t.Helper()
	cfg, err := config.Load("", []string{"TALLY_STORAGE_PATH=" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, clock: clock.Real{}, cfg: cfg}
	return a
}

// Package config owns tally.yaml: its keys, the embedded defaults, TALLY_*
// environment overrides, and validation that names the setting at fault.
package config

import (
	_ "embed"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"tally/model"
	"tally/report"
	"tally/runner"
	"tally/storage"
	"tally/subscriptions"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// Config is tally.yaml. Every key can be overridden by an environment variable:
// TALLY_ + the key path in upper case with "." and "-" as "_"
// (source.bad_row_rate → TALLY_SOURCE_BAD_ROW_RATE).
type Config struct {
	readOnly  bool            // LoadReadOnly: source secrets may be missing
	Storage   StorageConfig   `yaml:"storage"`
	Source    SourceConfig    `yaml:"source"`
	Runner    RunnerConfig    `yaml:"runner"`
	License   LicenseConfig   `yaml:"license"`
	Analytics AnalyticsConfig `yaml:"analytics"`
	Jobs      JobsConfig      `yaml:"jobs"`
	Log       LogConfig       `yaml:"log"`
	SMTP      SMTPConfig      `yaml:"smtp"`
	Reports   ReportsConfig   `yaml:"reports"`
	Serve     ServeConfig     `yaml:"serve"`
	Metrics   MetricsConfig   `yaml:"metrics"`
	Alerts    AlertsConfig    `yaml:"alerts"`

	// ignoredEnv are unknown variables of the kubelet's service-link shapes,
	// logged at debug once the logger exists.
	IgnoredEnv []string `yaml:"-"`
}

// ServeConfig tunes tally serve.
type ServeConfig struct {
	Listen string `yaml:"listen"` // the console (and the routes outside its login)
	// PublicListen, when set, serves only the routes outside the console's
	// login (/healthz, /metrics, /unsubscribe, signed links, webhooks): what a
	// Service or an Ingress exposes, while the console stays on Listen.
	PublicListen string `yaml:"public_listen"`
	// MetricsLogin puts /metrics behind the console's login (and off
	// PublicListen); by default it is outside it, for Prometheus.
	MetricsLogin bool     `yaml:"metrics_login"`
	CatchUp      int      `yaml:"catch_up"` // on start, run missing periods among each job's latest N
	Grace        Duration `yaml:"grace"`    // on SIGTERM, how long running jobs may finish
	// PublicURL is the console as email recipients reach it: unsubscribe links
	// and headers point there ("": none are sent).
	PublicURL string `yaml:"public_url"`
	// SigningKeyFile holds the HMAC key signing download links, unsubscribe
	// links and the console's forms ("": a key generated once in the control
	// store). UnsubscribeKeyFile is its older name.
	SigningKeyFile     string `yaml:"signing_key_file"`
	UnsubscribeKeyFile string `yaml:"unsubscribe_key_file"`
	// CatchUpEmailWithin: a period serve catches up is emailed only if its
	// scheduled firing came after the deployment's first start and at most
	// this long ago (otherwise it is published, not emailed).
	CatchUpEmailWithin Duration   `yaml:"catch_up_email_within"`
	Auth               AuthConfig `yaml:"auth"`
}

// AuthConfig is the console's login: none (refused on a listen address
// other than loopback unless allow_anonymous), token (named tokens, each with
// a role, typed once on /login; then a server-side session) or header (a user
// header set by an authenticating proxy, trusted only from its addresses,
// each user's role from users or default_role).
type AuthConfig struct {
	Type string `yaml:"type"`
	// AllowAnonymous lets a console with type none listen beyond loopback
	// (anonymous users are viewers there; a banner says so on every page).
	AllowAnonymous bool          `yaml:"allow_anonymous"`
	Tokens         []TokenConfig `yaml:"tokens"`
	// TokenFile is one token, named "token", role operator (the older form of
	// tokens).
	TokenFile      string   `yaml:"token_file"`
	Token          string   `yaml:"-"`
	UserHeader     string   `yaml:"user_header"`
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Users are header mode's users with their role; DefaultRole the role of
	// any other user the proxy sends ("": refused).
	Users       map[string]string `yaml:"users"`
	DefaultRole string            `yaml:"default_role"`
	// SessionTTL is how long a login lasts (type token).
	SessionTTL Duration `yaml:"session_ttl"`
	// Proxies are TrustedProxies parsed (addresses as one-address prefixes).
	Proxies []netip.Prefix `yaml:"-"`
}

// TokenConfig is one named console token: who typed it is Name, with Role
// (viewer or operator); the secret only from TokenFile.
type TokenConfig struct {
	Name      string `yaml:"name"`
	Role      string `yaml:"role"`
	TokenFile string `yaml:"token_file"`
	Token     string `yaml:"-"`
}

// Roles a console identity can have: a viewer reads, an operator also re-runs
// periods and starts backfills.
var Roles = []string{"viewer", "operator"}

// MetricsConfig: one-shot runs push to a Prometheus Pushgateway when set.
type MetricsConfig struct {
	Pushgateway string `yaml:"pushgateway"`
}

// AlertsConfig: who hears about a run that failed after its retries.
type AlertsConfig struct {
	Email   []string `yaml:"email"`   // operators' addresses (sent like report emails)
	Webhook string   `yaml:"webhook"` // POSTed a JSON payload
}

// SMTPConfig is where emails go; with no host they are written to the outbox.
// The password is a secret: only from TALLY_SMTP_PASSWORD or smtp.password_file.
type SMTPConfig struct {
	Host         string   `yaml:"host"`
	Port         int      `yaml:"port"`
	TLS          string   `yaml:"tls"` // starttls, tls, none
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	From         string   `yaml:"from"`
	Timeout      Duration `yaml:"timeout"`
	Attempts     int      `yaml:"attempts"`
	Backoff      Duration `yaml:"backoff"`
}

// ReportsConfig shapes report files and their links.
type ReportsConfig struct {
	// BaseURL, if set, makes links <base_url>/<key> (a web server the operator
	// runs in front of the storage); it wins over presigned and signed links.
	BaseURL string `yaml:"base_url"`
	// LinkExpiry is how long presigned (S3) and signed (serve's /files/) links
	// work; storage.s3.link_expiry is its older name. Validate sets it.
	LinkExpiry Duration        `yaml:"link_expiry"`
	Templates  []report.Custom `yaml:"templates"`
	// CSVBOM starts CSV files with a UTF-8 byte-order mark, for Excel on
	// Windows (off: headers stay exact for pandas and encoding/csv readers).
	CSVBOM bool `yaml:"csv_bom"`
	// Recipients: each (one message per recipient, with its own unsubscribe
	// link) or bcc (one message, the recipients in Bcc).
	Recipients string `yaml:"recipients"`
}

// StoreConfig is one store: a local directory or an S3 bucket and prefix.
type StoreConfig struct {
	Type string   `yaml:"type"` // local or s3
	Path string   `yaml:"path"` // local
	S3   S3Config `yaml:"s3"`
}

// S3Config is a bucket on an S3-compatible endpoint. Credentials come from the
// standard AWS chain (AWS_ACCESS_KEY_ID…, files, IAM) or from key files, never
// from the YAML.
type S3Config struct {
	Endpoint       string   `yaml:"endpoint"` // "" for AWS
	Region         string   `yaml:"region"`
	Bucket         string   `yaml:"bucket"`
	Prefix         string   `yaml:"prefix"`
	PathStyle      bool     `yaml:"path_style"`
	PublicEndpoint string   `yaml:"public_endpoint"` // links are signed for this endpoint
	LinkExpiry     Duration `yaml:"link_expiry"`     // default and maximum 7 days
	PartSize       int64    `yaml:"part_size"`       // multipart part size in bytes (default 8 MiB)
	AccessKeyFile  string   `yaml:"access_key_file"`
	SecretKeyFile  string   `yaml:"secret_key_file"`
}

// StorageConfig is the control store (ledger, leases, subscriptions, outbox) and,
// optionally, one store per region: a region's data goes only to its own store.
type StorageConfig struct {
	StoreConfig    `yaml:",inline"`
	RequestTimeout Duration               `yaml:"request_timeout"` // each control call (lease, ledger, subscriptions, claims)
	IdleTimeout    Duration               `yaml:"idle_timeout"`    // a data stream with no byte moved for this long fails
	TmpDir         string                 `yaml:"tmp_dir"`         // spill files ("": the system's temp directory)
	Regions        map[string]StoreConfig `yaml:"regions"`
}

// SourceConfig chooses where sync-clusters reads from.
type SourceConfig struct {
	Type       string      `yaml:"type"` // demo or files
	Seed       uint64      `yaml:"seed"`
	Scale      int         `yaml:"scale"`
	BadRowRate float64     `yaml:"bad_row_rate"`
	Grace      Duration    `yaml:"grace"`
	EmptyGuard bool        `yaml:"empty_guard"`
	Files      FilesConfig `yaml:"files"`
	Webex      WebexConfig `yaml:"webex"`
}

// WebexConfig is the webex source: an OAuth integration or service app whose
// refresh token each partner's administrator granted once (tally source webex
// login). The client secret comes from a file or the environment only.
type WebexConfig struct {
	BaseURL             string            `yaml:"base_url"`
	TokenURL            string            `yaml:"token_url"`
	ClientID            string            `yaml:"client_id"`
	ClientIDFile        string            `yaml:"client_id_file"`
	ClientSecret        string            `yaml:"client_secret"`
	ClientSecretFile    string            `yaml:"client_secret_file"`
	Partners            []WebexPartner    `yaml:"partners"`
	Regions             map[string]string `yaml:"regions"`
	CallsHosts          map[string]string `yaml:"calls_hosts"`
	Parallel            int               `yaml:"parallel"`
	CallsParallel       int               `yaml:"calls_parallel"`
	CallsInterval       Duration          `yaml:"calls_interval"`
	CallsLateness       Duration          `yaml:"calls_lateness"`
	PayloadRetention    Duration          `yaml:"payload_retention"`
	WebhookMaxBytes     int64             `yaml:"webhook_max_bytes"`
	RequestsPerSecond   float64           `yaml:"requests_per_second"`
	RequestTimeout      Duration          `yaml:"request_timeout"`
	SkipFailedCustomers bool              `yaml:"skip_failed_customers"`
}

// WebexPartner is one partner organisation the source reads for.
type WebexPartner struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Calls is how the partner's call records come: poll (the call-history
	// API, paced per token) or webhook (the Partner Hub Detailed Call Records
	// webhook, received by tally serve).
	Calls string `yaml:"calls"`
	// Feed is the webhook's feed chosen in Partner Hub: analytics (every
	// customer with a Calling relationship) or billing (calls of users with
	// a Calling license the partner sold).
	Feed string `yaml:"feed"`
	// WebhookSecretFile holds the webhook's secret token (required for
	// calls: webhook; never in the config file).
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	// WebhookSecret is read from WebhookSecretFile.
	WebhookSecret string `yaml:"-"`
}

// Webhook reports whether the partner's call records come by the webhook.
func (p WebexPartner) Webhook() bool { return p.Calls == "webhook" }

// HasFiles reports whether source.files names a landing zone.
func (f FilesConfig) HasFiles() bool { return f.Path != "" || f.S3.Bucket != "" }

// FilesConfig is the landing zone of the files source: a local directory (path)
// or an S3 bucket and prefix (s3, with credentials as for storage).
type FilesConfig struct {
	Path          string   `yaml:"path"`
	S3            S3Config `yaml:"s3"`
	ReadyDeadline Duration `yaml:"ready_deadline"`  // after the day ends, how long its manifest may take
	MaxCallLength Duration `yaml:"max_call_length"` // CDR files named up to this long after the day ends are read for it
	Poll          Duration `yaml:"poll"`            // tally serve re-checks waiting periods this often
}

// RunnerConfig is §3's leases, retries and timeouts.
type RunnerConfig struct {
	LeaseTTL       Duration `yaml:"lease_ttl"`
	LeaseRenew     Duration `yaml:"lease_renew"`
	MaxAttempts    int      `yaml:"max_attempts"`
	Backoff        Duration `yaml:"backoff"`
	BackoffMax     Duration `yaml:"backoff_max"`
	AttemptTimeout Duration `yaml:"attempt_timeout"`
	UpstreamWait   Duration `yaml:"upstream_wait"`
	// MaxBackfillPeriods refuses a backfill range larger than this (a typo in
	// --from should not plan 46,022 periods).
	MaxBackfillPeriods int `yaml:"max_backfill_periods"`
	// StartDate is the first day tally is expected to have run (YYYY-MM-DD):
	// periods before it are not gaps in tally plan --check or the console.
	// "": the day of the ledger's first run.
	StartDate string `yaml:"start_date"`
}

// LicenseConfig tunes §6.
type LicenseConfig struct {
	UnderThreshold float64 `yaml:"under_threshold"`
}

// AnalyticsConfig tunes §7.
type AnalyticsConfig struct {
	PoorJitterMs       float64 `yaml:"poor_jitter_ms"`
	PoorLatencyMs      float64 `yaml:"poor_latency_ms"`
	PoorLossPct        float64 `yaml:"poor_loss_pct"`
	LowAssignmentBelow float64 `yaml:"low_assignment_below"`
}

// JobConfig overrides a job's schedule.
type JobConfig struct {
	Schedule string `yaml:"schedule"`
}

// JobsConfig has one entry per job.
type JobsConfig struct {
	SyncClusters   JobConfig `yaml:"sync-clusters"`
	LicenseUsage   JobConfig `yaml:"license-usage"`
	Analytics      JobConfig `yaml:"analytics"`
	ReportsDaily   JobConfig `yaml:"reports-daily"`
	ReportsWeekly  JobConfig `yaml:"reports-weekly"`
	ReportsMonthly JobConfig `yaml:"reports-monthly"`
}

// LogConfig sets the log level and format (auto: console on a terminal, else JSON).
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Duration is a time.Duration written as "60s", "10m", "1h".
type Duration time.Duration

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 30s, 10m, 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type config\.(\w+)`)

// Load reads the embedded defaults, then the file (if any), then TALLY_*
// environment variables. Unknown keys anywhere are errors.
func Load(path string, env []string) (*Config, error) { return load(path, env, false) }

// LoadReadOnly is Load for a command that only reads tally's own records
// (runs, plan, jobs, subscriptions list): the source's secrets (the Webex
// client secret) need not be set.
func LoadReadOnly(path string, env []string) (*Config, error) { return load(path, env, true) }

func load(path string, env []string, readOnly bool) (*Config, error) {
	var cfg Config
	if err := decodeStrict(defaultsYAML, &cfg, "embedded defaults"); err != nil {
		return nil, err
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, runner.Usagef("config: %v", err)
		}
		if err := decodeStrict(b, &cfg, path); err != nil {
			return nil, err
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return nil, err
	}
	cfg.readOnly = readOnly
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func decodeStrict(b []byte, cfg *Config, name string) error {
	var secrets struct {
		SMTP struct {
			Password string `yaml:"password"`
		} `yaml:"smtp"`
	}
	if yaml.Unmarshal(b, &secrets) == nil && secrets.SMTP.Password != "" {
		return runner.Usagef("config %s: smtp.password: secrets are never read from the config file; set TALLY_SMTP_PASSWORD or smtp.password_file", name)
	}
	var webexSecret struct {
		Source struct {
			Webex struct {
				ClientSecret string `yaml:"client_secret"`
			} `yaml:"webex"`
		} `yaml:"source"`
	}
	if yaml.Unmarshal(b, &webexSecret) == nil && webexSecret.Source.Webex.ClientSecret != "" {
		return runner.Usagef("config %s: source.webex.client_secret: secrets are never read from the config file; set TALLY_SOURCE_WEBEX_CLIENT_SECRET or source.webex.client_secret_file", name)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && err.Error() != "EOF" {
		msg := err.Error()
		if m := unknownField.FindAllStringSubmatch(msg, -1); m != nil {
			var parts []string
			for _, x := range m {
				parts = append(parts, fmt.Sprintf("line %s: unknown key %q in %s", x[1], x[2], sectionName(x[3])))
			}
			msg = strings.Join(parts, "; ")
		}
		msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
		return runner.Usagef("config %s: %s (tally config check lists the valid keys)", name, msg)
	}
	return nil
}

func sectionName(typ string) string {
	name := strings.TrimSuffix(typ, "Config")
	if name == "" {
		return "the top level"
	}
	return strings.ToLower(name[:1]) + name[1:]
}

// envKeys maps every TALLY_* variable to its field.
func envKeys(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		f := v.Field(i)
		if opts == "inline" {
			envKeys(f, prefix, out)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		key := prefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
		if f.Kind() == reflect.Struct {
			envKeys(f, key, out)
			continue
		}
		out[key] = f
	}
}

// notConfig are TALLY_ variables that are not config keys.
var notConfig = map[string]bool{"TALLY_CONFIG": true}

// kubeletServiceLink matches the variables the kubelet injects for every Service
// of a pod's namespace (a Service named tally-serve gives TALLY_SERVE_PORT=tcp://…,
// TALLY_SERVE_SERVICE_HOST, TALLY_SERVE_PORT_8080_TCP_ADDR, …).
var kubeletServiceLink = regexp.MustCompile(`^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT|PORT_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$`)

// applyEnv sets every TALLY_* variable's field. A known key is always parsed; an
// unknown one is an error, unless it has a kubelet service-link shape.
func applyEnv(cfg *Config, env []string) error {
	fields := map[string]reflect.Value{}
	envKeys(reflect.ValueOf(cfg).Elem(), "TALLY", fields)
	for _, kv := range env {
		k, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "TALLY_") || notConfig[k] {
			continue
		}
		f, ok := fields[k]
		if !ok && kubeletServiceLink.MatchString(k) {
			cfg.IgnoredEnv = append(cfg.IgnoredEnv, k)
			continue
		}
		if !ok {
			return runner.Usagef("environment: %s is not a tally setting (the settings are %s)", k, strings.Join(sortedKeys(fields), ", "))
		}
		if err := setField(f, val); err != nil {
			return runner.Usagef("environment: %s=%q: %v", k, val, err)
		}
	}
	return nil
}

func sortedKeys(m map[string]reflect.Value) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func setField(f reflect.Value, s string) error {
	if f.Type() == reflect.TypeOf(Duration(0)) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration (like 30s, 10m, 1h)")
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot be set from the environment")
		}
		var items []string
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				items = append(items, part)
			}
		}
		f.Set(reflect.ValueOf(items))
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		f.SetInt(n)
	case reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not a non-negative integer")
		}
		f.SetUint(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		f.SetFloat(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not true or false")
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// Validate checks every setting and names each one at fault.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	checkStore := func(where string, sc StoreConfig) {
		switch sc.Type {
		case "local":
			if sc.Path == "" {
				bad("%s.path: empty (where local storage keeps its files)", where)
			}
		case "s3":
			if sc.S3.Bucket == "" {
				bad("%s.s3.bucket: required", where)
			}
			if sc.S3.LinkExpiry.D() > 7*24*time.Hour {
				bad("%s.s3.link_expiry: %s is longer than S3 allows (7 days)", where, sc.S3.LinkExpiry.D())
			}
		default:
			bad("%s.type: %q: local or s3", where, sc.Type)
		}
	}
	// reports.link_expiry: set, or the older storage.s3.link_expiry, or 7 days.
	if c.Reports.LinkExpiry.D() == 0 {
		c.Reports.LinkExpiry = c.Storage.S3.LinkExpiry
		if c.Reports.LinkExpiry.D() == 0 {
			c.Reports.LinkExpiry = Duration(7 * 24 * time.Hour)
		}
	}
	if d := c.Reports.LinkExpiry.D(); d < time.Second {
		bad("reports.link_expiry: %s: at least 1s", d)
	}
	s3Stores := c.Storage.Type == "s3"
	for _, rc := range c.Storage.Regions {
		s3Stores = s3Stores || rc.Type == "s3"
	}
	if s3Stores && c.Reports.LinkExpiry.D() > 7*24*time.Hour {
		bad("reports.link_expiry: %s is longer than S3 presigned links allow (7 days)", c.Reports.LinkExpiry.D())
	}
	if c.Serve.SigningKeyFile == "" {
		c.Serve.SigningKeyFile = c.Serve.UnsubscribeKeyFile
	} else if c.Serve.UnsubscribeKeyFile != "" && c.Serve.UnsubscribeKeyFile != c.Serve.SigningKeyFile {
		bad("serve.signing_key_file and serve.unsubscribe_key_file (its older name) name different files: keep signing_key_file")
	}
	if c.Serve.CatchUpEmailWithin.D() < 0 {
		bad("serve.catch_up_email_within: %s: 0 or more", c.Serve.CatchUpEmailWithin.D())
	}
	checkStore("storage", c.Storage.StoreConfig)
	if len(c.Storage.Regions) > 0 {
		for _, r := range model.Regions {
			sc, ok := c.Storage.Regions[r]
			if !ok {
				bad("storage.regions.%s: not configured: with per-region storage every region needs its own store (never a fallback to another region's)", r)
				continue
			}
			checkStore("storage.regions."+r, sc)
		}
		for r := range c.Storage.Regions {
			if !model.ValidRegion(r) {
				bad("storage.regions.%s: not a region (%s)", r, strings.Join(model.Regions, ", "))
			}
		}
	}
	switch c.Source.Type {
	case "demo":
		if c.Source.Scale < 1 {
			bad("source.scale: %d: must be at least 1", c.Source.Scale)
		}
		if c.Source.BadRowRate < 0 || c.Source.BadRowRate > 1 {
			bad("source.bad_row_rate: %g: must be between 0 and 1", c.Source.BadRowRate)
		}
	case "files":
		f := c.Source.Files
		if (f.Path == "") == (f.S3.Bucket == "") {
			bad("source.files: set path (a local directory) or s3.bucket, one of them")
		}
		if f.ReadyDeadline <= 0 {
			bad("source.files.ready_deadline: must be positive")
		}
	case "webex":
		c.validateWebex(bad)
	default:
		bad("source.type: %q is not a source (demo, files, webex)", c.Source.Type)
	}
	r := c.Runner
	if r.LeaseTTL <= 0 || r.LeaseRenew <= 0 || r.LeaseRenew >= r.LeaseTTL {
		bad("runner.lease_renew (%s) must be positive and shorter than runner.lease_ttl (%s)", r.LeaseRenew.D(), r.LeaseTTL.D())
	}
	if r.MaxAttempts < 1 {
		bad("runner.max_attempts: %d: must be at least 1", r.MaxAttempts)
	}
	if r.Backoff <= 0 || r.BackoffMax < r.Backoff {
		bad("runner.backoff (%s) must be positive and at most runner.backoff_max (%s)", r.Backoff.D(), r.BackoffMax.D())
	}
	if r.AttemptTimeout <= 0 {
		bad("runner.attempt_timeout: must be positive")
	}
	if r.MaxBackfillPeriods < 1 {
		bad("runner.max_backfill_periods: %d: must be at least 1", r.MaxBackfillPeriods)
	}
	if c.Storage.RequestTimeout <= 0 || c.Storage.IdleTimeout <= 0 {
		bad("storage.request_timeout (%s) and storage.idle_timeout (%s) must be positive", c.Storage.RequestTimeout.D(), c.Storage.IdleTimeout.D())
	}
	if t := c.License.UnderThreshold; t < 0 || t > 1 {
		bad("license.under_threshold: %g: must be between 0 and 1", t)
	}
	if an := c.Analytics; an.PoorJitterMs <= 0 || an.PoorLatencyMs <= 0 || an.PoorLossPct <= 0 {
		bad("analytics.poor_jitter_ms, poor_latency_ms and poor_loss_pct must be positive")
	}
	if b := c.Analytics.LowAssignmentBelow; b <= 0 || b > 1 {
		bad("analytics.low_assignment_below: %g: must be in (0, 1]", b)
	}
	for name, spec := range c.Schedules() {
		if _, err := cron.ParseStandard(spec); err != nil {
			bad("jobs.%s.schedule: %q: %v", name, spec, err)
		}
	}
	if c.SMTP.Host != "" {
		if c.SMTP.Port <= 0 || c.SMTP.Port > 65535 {
			bad("smtp.port: %d is not a port", c.SMTP.Port)
		}
		switch c.SMTP.TLS {
		case "starttls", "tls", "none":
		default:
			bad("smtp.tls: %q: starttls, tls or none", c.SMTP.TLS)
		}
		if c.SMTP.PasswordFile != "" && c.SMTP.Password == "" {
			b, err := os.ReadFile(c.SMTP.PasswordFile)
			if err != nil {
				bad("smtp.password_file: %v", err)
			}
			c.SMTP.Password = strings.TrimSpace(string(b))
		}
	}
	if err := subscriptions.ValidateAddress(c.SMTP.From); err != nil {
		bad("smtp.from: %v", err)
	}
	if c.SMTP.Attempts < 1 {
		bad("smtp.attempts: %d: at least 1", c.SMTP.Attempts)
	}
	if _, err := subscriptions.NewCatalog(c.Reports.Templates); err != nil {
		bad("reports.templates: %v", err)
	}
	for _, u := range []struct{ key, v string }{{"reports.base_url", c.Reports.BaseURL}, {"alerts.webhook", c.Alerts.Webhook}, {"metrics.pushgateway", c.Metrics.Pushgateway}} {
		if u.v != "" && !strings.HasPrefix(u.v, "http://") && !strings.HasPrefix(u.v, "https://") {
			bad("%s %q: an http:// or https:// URL", u.key, u.v)
		}
	}
	if c.Serve.CatchUp < 0 {
		bad("serve.catch_up: %d: 0 or more", c.Serve.CatchUp)
	}
	if u := c.Serve.PublicURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		bad("serve.public_url %q: an http:// or https:// URL (the console as recipients reach it)", u)
	}
	switch c.Reports.Recipients {
	case "each", "bcc":
	default:
		bad("reports.recipients: %q: each (one message per recipient) or bcc", c.Reports.Recipients)
	}
	a := &c.Serve.Auth
	a.Proxies = nil
	for _, p := range a.TrustedProxies {
		if pre, err := netip.ParsePrefix(p); err == nil {
			a.Proxies = append(a.Proxies, pre.Masked())
		} else if addr, err := netip.ParseAddr(p); err == nil {
			a.Proxies = append(a.Proxies, netip.PrefixFrom(addr, addr.BitLen()))
		} else {
			bad("serve.auth.trusted_proxies: %q: an address or a CIDR", p)
		}
	}
	switch a.Type {
	case "none":
	case "token":
		if a.TokenFile != "" { // the older single token
			a.Tokens = append([]TokenConfig{{Name: "token", Role: "operator", TokenFile: a.TokenFile}}, a.Tokens...)
			a.TokenFile = ""
		}
		if len(a.Tokens) == 0 {
			bad("serve.auth: type token needs tokens: [{name, role, token_file}] (or token_file)")
		}
		names := map[string]bool{}
		for i := range a.Tokens {
			tc := &a.Tokens[i]
			where := fmt.Sprintf("serve.auth.tokens[%d]", i)
			if tc.Name == "" || strings.ContainsAny(tc.Name, " \t\r\n") || names[tc.Name] {
				bad("%s.name %q: a name of its own, without spaces (it is who the ledger says acted)", where, tc.Name)
			}
			names[tc.Name] = true
			if !slices.Contains(Roles, tc.Role) {
				bad("%s.role %q: %s", where, tc.Role, strings.Join(Roles, " or "))
			}
			b, err := os.ReadFile(tc.TokenFile)
			if err != nil {
				bad("%s.token_file: %v (the token of %s, from a file, never from the YAML)", where, err, tc.Name)
			} else if tc.Token = strings.TrimSpace(string(b)); len(tc.Token) < 16 {
				bad("%s.token_file: the token is %d characters: at least 16", where, len(tc.Token))
			}
		}
	case "header":
		if a.UserHeader == "" || len(a.TrustedProxies) == 0 {
			bad("serve.auth: type header needs user_header and trusted_proxies (the addresses of the authenticating proxy)")
		}
		for u, role := range a.Users {
			if !slices.Contains(Roles, role) {
				bad("serve.auth.users[%s]: role %q: %s", u, role, strings.Join(Roles, " or "))
			}
		}
		if a.DefaultRole != "" && !slices.Contains(Roles, a.DefaultRole) {
			bad("serve.auth.default_role %q: %s, or \"\" to refuse users not in serve.auth.users", a.DefaultRole, strings.Join(Roles, " or "))
		}
	default:
		bad("serve.auth.type: %q: none, token or header", a.Type)
	}
	if a.SessionTTL.D() < time.Minute {
		bad("serve.auth.session_ttl: %s: at least 1m", a.SessionTTL.D())
	}
	if c.Serve.PublicListen != "" && c.Serve.PublicListen == c.Serve.Listen {
		bad("serve.public_listen %q: another address than serve.listen (it serves only the routes outside the login)", c.Serve.PublicListen)
	}
	if d := c.Runner.StartDate; d != "" {
		if _, err := time.Parse("2006-01-02", d); err != nil {
			bad("runner.start_date %q: a date like 2026-01-01, or \"\" for the ledger's first run", d)
		}
	}
	for _, a := range c.Alerts.Email {
		if err := subscriptions.ValidateAddress(a); err != nil {
			bad("alerts.email: %v", err)
		}
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		bad("log.format: %q: want auto, json or console", c.Log.Format)
	}
	if len(errs) > 0 {
		return runner.Usagef("config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// validateWebex checks the webex source's settings, reading the client id and
// secret from their files; every missing one is named with where to set it.
func (c *Config) validateWebex(bad func(string, ...any)) {
	w := &c.Source.Webex
	read := func(key, file string, into *string) {
		if *into != "" || file == "" {
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			bad("source.webex.%s: %v", key, err)
			return
		}
		*into = strings.TrimSpace(string(b))
	}
	read("client_id_file", w.ClientIDFile, &w.ClientID)
	read("client_secret_file", w.ClientSecretFile, &w.ClientSecret)
	// A read-only command reads tally's records only: no Webex request, so
	// no client credentials needed.
	if w.ClientID == "" && !c.readOnly {
		bad("source.webex.client_id: not set (set source.webex.client_id, source.webex.client_id_file or TALLY_SOURCE_WEBEX_CLIENT_ID to your integration's client id)")
	}
	if w.ClientSecret == "" && !c.readOnly {
		bad("source.webex.client_secret: not set (set source.webex.client_secret_file or TALLY_SOURCE_WEBEX_CLIENT_SECRET; never in the config file)")
	}
	if len(w.Partners) == 0 {
		bad(`source.webex.partners: none (list each partner as {id: P1, name: "Partner One"}, then store its refresh token with tally source webex login --partner P1)`)
	}
	seen := map[string]bool{}
	for i, p := range w.Partners {
		if p.ID == "" || p.Name == "" || strings.ContainsAny(p.ID, `/\ `) {
			bad("source.webex.partners[%d]: id (no slashes or spaces) and name are required", i)
		}
		if seen[p.ID] {
			bad("source.webex.partners: %s is listed twice", p.ID)
		}
		seen[p.ID] = true
		switch p.Calls {
		case "":
			w.Partners[i].Calls = "poll"
		case "poll", "webhook":
		default:
			bad("source.webex.partners[%d].calls: %q is neither poll nor webhook", i, p.Calls)
		}
		switch p.Feed {
		case "":
			w.Partners[i].Feed = "analytics"
		case "analytics", "billing":
		default:
			bad("source.webex.partners[%d].feed: %q is neither analytics nor billing (the webhook's feed in Partner Hub)", i, p.Feed)
		}
		if p.WebhookSecretFile != "" {
			if b, err := os.ReadFile(p.WebhookSecretFile); err != nil {
				bad("source.webex.partners[%d].webhook_secret_file: %v", i, err)
			} else {
				w.Partners[i].WebhookSecret = strings.TrimSpace(string(b))
			}
		}
	}
	if w.CallsLateness <= 0 || w.CallsLateness >= c.Source.Grace {
		bad("source.webex.calls_lateness (%s): must be positive and shorter than source.grace (%s): a day syncs within the grace window once its late calls are in", w.CallsLateness.D(), c.Source.Grace.D())
	}
	if w.PayloadRetention < Duration(24*time.Hour) {
		bad("source.webex.payload_retention (%s): at least 24h (stored webhook deliveries are kept this long once their days are complete)", w.PayloadRetention.D())
	}
	for _, u := range []struct{ key, v string }{{"base_url", w.BaseURL}, {"token_url", w.TokenURL}} {
		if !strings.HasPrefix(u.v, "http://") && !strings.HasPrefix(u.v, "https://") {
			bad("source.webex.%s %q: an http:// or https:// URL", u.key, u.v)
		}
	}
	regions := map[string]string{}
	for org, r := range w.Regions {
		if !model.ValidRegion(r) {
			bad("source.webex.regions.%s: %q is not a region (%s)", org, r, strings.Join(model.Regions, ", "))
		}
		regions[strings.ToLower(org)] = r
	}
	w.Regions = regions
	for r, host := range w.CallsHosts {
		if !model.ValidRegion(r) {
			bad("source.webex.calls_hosts.%s: not a region (%s)", r, strings.Join(model.Regions, ", "))
		}
		if !strings.HasPrefix(host, "http://") && !strings.HasPrefix(host, "https://") {
			bad("source.webex.calls_hosts.%s %q: an http:// or https:// URL", r, host)
		}
	}
	if w.Parallel < 1 || w.CallsParallel < 1 {
		bad("source.webex.parallel (%d) and calls_parallel (%d): at least 1", w.Parallel, w.CallsParallel)
	}
	if w.RequestsPerSecond <= 0 || w.RequestTimeout <= 0 || w.CallsInterval < 0 {
		bad("source.webex.requests_per_second and request_timeout must be positive, calls_interval 0 or more")
	}
}

// Schedules are the configured schedule overrides by job name.
func (c *Config) Schedules() map[string]string {
	out := map[string]string{}
	if s := c.Jobs.SyncClusters.Schedule; s != "" {
		out["sync-clusters"] = s
	}
	if s := c.Jobs.LicenseUsage.Schedule; s != "" {
		out["license-usage"] = s
	}
	for name, j := range map[string]JobConfig{"analytics": c.Jobs.Analytics, "reports-daily": c.Jobs.ReportsDaily,
		"reports-weekly": c.Jobs.ReportsWeekly, "reports-monthly": c.Jobs.ReportsMonthly} {
		if j.Schedule != "" {
			out[name] = j.Schedule
		}
	}
	return out
}

// RunnerConfig is the runner's settings.
func (c *Config) RunnerConfig() runner.Config {
	r := c.Runner
	wait := r.UpstreamWait.D()
	if wait <= 0 {
		wait = 3 * r.LeaseTTL.D()
	}
	return runner.Config{LeaseTTL: r.LeaseTTL.D(), LeaseRenew: r.LeaseRenew.D(), MaxAttempts: r.MaxAttempts,
		Backoff: r.Backoff.D(), BackoffMax: r.BackoffMax.D(), AttemptTimeout: r.AttemptTimeout.D(), UpstreamWait: wait,
		MaxBackfillPeriods: r.MaxBackfillPeriods, RequestTimeout: c.Storage.RequestTimeout.D()}
}

// Timeouts bound every store call (storage.request_timeout, storage.idle_timeout).
func (c *Config) Timeouts() storage.Timeouts {
	return storage.Timeouts{Request: c.Storage.RequestTimeout.D(), Idle: c.Storage.IdleTimeout.D()}
}

// Redacted renders the effective config with secrets hidden.
func (c *Config) Redacted() string {
	shown := *c
	if shown.SMTP.Password != "" {
		shown.SMTP.Password = "<redacted>"
	}
	if shown.Source.Webex.ClientSecret != "" {
		shown.Source.Webex.ClientSecret = "<redacted>"
	}
	b, _ := yaml.Marshal(&shown)
	return string(b)
}

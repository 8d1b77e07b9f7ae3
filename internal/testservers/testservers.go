// Package testservers gives tests the real servers `make test` started (Mailpit
// for SMTP): their addresses come from the environment. Without them a test
// skips on a developer's machine and fails in CI (CI=true), never silently.
package testservers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"tally/clock"
)

// Environment variables with_servers exports.
const (
	EnvSMTP      = "TALLYTEST_SMTP"      // host:port of Mailpit's SMTP
	EnvMailpit   = "TALLYTEST_MAILPIT"   // http://host:port of Mailpit's API
	EnvS3        = "TALLYTEST_S3"        // http://host:port of MinIO
	EnvS3Key     = "TALLYTEST_S3_KEY"    // its access key
	EnvS3Secret  = "TALLYTEST_S3_SECRET" // its secret key
	EnvToxiproxy = "TALLYTEST_TOXIPROXY" // http://host:port of toxiproxy's API

	EnvSMTPAuth         = "TALLYTEST_SMTP_AUTH"          // host:port of a Mailpit that takes one login only
	EnvSMTPAuthUser     = "TALLYTEST_SMTP_AUTH_USER"     // its user
	EnvSMTPAuthPassword = "TALLYTEST_SMTP_AUTH_PASSWORD" // and password
)

// SMTPLogin is a Mailpit that refuses any login but one.
type SMTPLogin struct {
	Host           string
	Port           int
	User, Password string
}

// NeedSMTPLogin returns the Mailpit with a login `make test` started.
func NeedSMTPLogin(t testing.TB) *SMTPLogin {
	addr := need(t, EnvSMTPAuth)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s=%q: %v", EnvSMTPAuth, addr, err)
	}
	p, _ := strconv.Atoi(port)
	return &SMTPLogin{Host: host, Port: p, User: need(t, EnvSMTPAuthUser), Password: need(t, EnvSMTPAuthPassword)}
}

// S3 is a running S3-compatible server.
type S3 struct {
	Endpoint, AccessKey, SecretKey string
}

// NeedS3 returns the MinIO `make test` started.
func NeedS3(t testing.TB) *S3 {
	return &S3{Endpoint: need(t, EnvS3), AccessKey: need(t, EnvS3Key), SecretKey: need(t, EnvS3Secret)}
}

func need(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		msg := fmt.Sprintf("%s is not set: run the tests with `make test`, which starts the test servers", env)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return v
}

// Mailpit is a running Mailpit: its SMTP host and port, and its API.
type Mailpit struct {
	Host string
	Port int
	API  string
}

// NeedMailpit returns the Mailpit `make test` started.
func NeedMailpit(t testing.TB) *Mailpit {
	smtp := need(t, EnvSMTP)
	api := need(t, EnvMailpit)
	host, port, err := net.SplitHostPort(smtp)
	if err != nil {
		t.Fatalf("%s=%q: %v", EnvSMTP, smtp, err)
	}
	p, _ := strconv.Atoi(port)
	return &Mailpit{Host: host, Port: p, API: api}
}

// Message is a message as Mailpit's API lists it.
type Message struct {
	ID        string `json:"ID"`
	MessageID string `json:"MessageID"` // the Message-ID header, without angle brackets
	Subject   string `json:"Subject"`
	To        []struct {
		Address string `json:"Address"`
	} `json:"To"`
}

// Full is one message with its parts.
type Full struct {
	Subject string `json:"Subject"`
	Text    string `json:"Text"`
	HTML    string `json:"HTML"`
}

// Search lists the messages matching a Mailpit search query (e.g. "to:ops@example.com").
func (m *Mailpit) Search(t testing.TB, query string) []Message {
	t.Helper()
	var out struct {
		Messages []Message `json:"messages"`
	}
	m.get(t, "/api/v1/search?query="+urlQuery(query), &out)
	return out.Messages
}

// Get reads one message whole.
func (m *Mailpit) Get(t testing.TB, id string) *Full {
	t.Helper()
	var f Full
	m.get(t, "/api/v1/message/"+id, &f)
	return &f
}

// WaitFor polls until query matches n messages (SMTP delivery is asynchronous).
func (m *Mailpit) WaitFor(t testing.TB, query string, n int) []Message {
	t.Helper()
	deadline := clock.Real{}.Now().Add(10 * time.Second) // polling a real server
	for {
		msgs := m.Search(t, query)
		if len(msgs) >= n || (clock.Real{}).Now().After(deadline) {
			return msgs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *Mailpit) get(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(m.API + path)
	if err != nil {
		t.Fatalf("mailpit %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("mailpit %s: %s: %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("mailpit %s: %v", path, err)
	}
}

func urlQuery(s string) string {
	out := ""
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			out += string(r)
		default:
			for _, b := range []byte(string(r)) {
				out += fmt.Sprintf("%%%02X", b)
			}
		}
	}
	return out
}

// Toxiproxy is a running toxiproxy: a TCP proxy that injects faults.
type Toxiproxy struct{ API string }

// NeedToxiproxy returns the toxiproxy `make test` started.
func NeedToxiproxy(t testing.TB) *Toxiproxy { return &Toxiproxy{API: need(t, EnvToxiproxy)} }

// Proxy is one proxy: Listen is the address to connect to instead of upstream.
type Proxy struct {
	tp     *Toxiproxy
	Name   string
	Listen string
}

// Proxy creates a proxy from a free 127.0.0.1 port to upstream (host:port),
// removed when the test ends.
func (tp *Toxiproxy) Proxy(t testing.TB, name, upstream string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	var out struct {
		Listen string `json:"listen"`
	}
	tp.call(t, http.MethodPost, "/proxies", map[string]any{"name": name, "listen": listen, "upstream": upstream, "enabled": true}, &out)
	t.Cleanup(func() { tp.call(t, http.MethodDelete, "/proxies/"+name, nil, nil) })
	return &Proxy{tp: tp, Name: name, Listen: out.Listen}
}

// Toxic adds a toxic (e.g. "timeout" with {"timeout": 0}: data stops, the
// connection stays open; "reset_peer" with toxicity 0.3) to the proxy's stream.
func (p *Proxy) Toxic(t testing.TB, name, typ, stream string, toxicity float64, attrs map[string]any) {
	t.Helper()
	p.tp.call(t, http.MethodPost, "/proxies/"+p.Name+"/toxics",
		map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": toxicity, "attributes": attrs}, nil)
}

// RemoveToxic removes a toxic.
func (p *Proxy) RemoveToxic(t testing.TB, name string) {
	t.Helper()
	p.tp.call(t, http.MethodDelete, "/proxies/"+p.Name+"/toxics/"+name, nil, nil)
}

func (tp *Toxiproxy) call(t testing.TB, method, path string, body any, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, tp.API+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("toxiproxy %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("toxiproxy %s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("toxiproxy %s %s: %v", method, path, err)
		}
	}
}

package browser

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// email is a message as a mail client reads it: its HTML part, its text part
// and its inline images by Content-ID.
type email struct {
	html, text string
	inline     map[string][]byte // Content-ID (without <>) → bytes
	header     mail.Header
}

func readEmail(t *testing.T, path string) *email {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	e := &email{inline: map[string][]byte{}, header: m.Header}
	var walk func(ctype string, h map[string][]string, body io.Reader)
	walk = func(ctype string, h map[string][]string, body io.Reader) {
		mt, params, err := mime.ParseMediaType(ctype)
		if err != nil {
			t.Fatalf("%s: Content-Type %q: %v", path, ctype, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			r := multipart.NewReader(body, params["boundary"])
			for {
				p, err := r.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				walk(p.Header.Get("Content-Type"), p.Header, p)
			}
		}
		get := func(k string) string {
			if v := h[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		switch strings.ToLower(get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("%s: a %s part: %v", path, mt, err)
		}
		switch {
		case get("Content-Id") != "" || get("Content-ID") != "":
			id := get("Content-Id")
			if id == "" {
				id = get("Content-ID")
			}
			e.inline[strings.Trim(id, "<>")] = b
		case mt == "text/html":
			e.html = string(b)
		case mt == "text/plain":
			e.text = string(b)
		}
	}
	walk(m.Header.Get("Content-Type"), m.Header, m.Body)
	return e
}

var hrefRE = regexp.MustCompile(`href="([^"]+)"`)

// The demo's weekly and daily report emails, opened as a mail client would at
// 600 px: nothing wider than 600 px, no stylesheet, script or external
// resource, every image sized and described and drawn from the message, and
// every link answered by serve without a login.
func TestTheDemosEmailsRenderWithin600PxWithInlineStylesAndEveryImageAndLinkResolves(t *testing.T) {
	s := demoSite(t)
	ctx := browser(t, 600)
	for _, which := range []struct{ name, glob string }{
		{"weekly", "reports-weekly/*/demo-customer-subscriptions/*.eml"},
		{"daily", "reports-daily/*/demo-flex/*.eml"},
	} {
		files, _ := filepath.Glob(filepath.Join(s.data, "outbox", which.glob))
		if len(files) == 0 {
			t.Fatalf("make demo left no %s email (%s)", which.name, which.glob)
		}
		e := readEmail(t, files[0])
		if strings.Contains(e.html, "file://") || strings.Contains(e.text, "file://") {
			t.Errorf("the %s email has a file:// link (serve.public_url is set: links go through serve)", which.name)
		}
		if lu := e.header.Get("List-Unsubscribe"); !strings.HasPrefix(lu, "<"+s.url+"/unsubscribe?t=") || e.header.Get("List-Unsubscribe-Post") == "" {
			t.Errorf("the %s email's List-Unsubscribe: %q", which.name, lu)
		}
		// What a mail client does with cid: images: show the message's parts.
		html := e.html
		for cid, b := range e.inline {
			html = strings.ReplaceAll(html, "cid:"+cid, "data:image/png;base64,"+base64.StdEncoding.EncodeToString(b))
		}
		page := filepath.Join(t.TempDir(), which.name+".html")
		os.WriteFile(page, []byte(html), 0o644)
		open(t, ctx, "file://"+page, "#message")
		screenshot(t, ctx, "email-"+which.name)
		if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 600 {
			t.Errorf("the %s email is %d px wide at 600 px", which.name, w)
		}
		if n := eval[int](t, ctx, `Array.from(document.body.querySelectorAll('*')).filter(el => el.getBoundingClientRect().right > 600.5).length`); n > 0 {
			t.Errorf("the %s email has %d elements beyond 600 px", which.name, n)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('style, link, script').length`); n > 0 {
			t.Errorf("the %s email has %d style, link or script elements: mail clients drop them (inline styles only)", which.name, n)
		}
		type img struct {
			Src           string
			Width, Height string
			Alt           string
			Natural       int
		}
		imgs := eval[[]img](t, ctx, `Array.from(document.images).map(i => ({Src: i.getAttribute('src').slice(0, 10), Width: i.getAttribute('width') || '',
			Height: i.getAttribute('height') || '', Alt: i.getAttribute('alt') || '', Natural: i.naturalWidth}))`)
		for _, im := range imgs {
			if im.Width == "" || im.Height == "" || im.Alt == "" || im.Natural == 0 || !strings.HasPrefix(im.Src, "data:") {
				t.Errorf("the %s email's image %+v: want width, height and alt, drawn from the message's own parts", which.name, im)
			}
		}
		if which.name == "weekly" && len(imgs) == 0 {
			t.Error("the weekly email has no chart")
		}
		if strings.Contains(e.html, `src="http`) {
			t.Errorf("the %s email loads an external resource", which.name)
		}
		// Every link answers, without a login: the files through serve, signed.
		links := hrefRE.FindAllStringSubmatch(e.html, -1)
		if len(links) < 2 {
			t.Errorf("the %s email has %d links", which.name, len(links))
		}
		for _, l := range links {
			u := strings.ReplaceAll(l[1], "&amp;", "&")
			resp, err := client.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("the %s email's link %s: %d", which.name, u, resp.StatusCode)
				continue
			}
			if pu, _ := url.Parse(u); strings.HasPrefix(pu.Path, "/files/") {
				_, key, _ := strings.Cut(strings.TrimPrefix(pu.Path, "/files/"), "/")
				want, err := os.ReadFile(filepath.Join(s.data, filepath.FromSlash(key)))
				if err != nil || !bytes.Equal(b, want) {
					t.Errorf("the %s email's link %s: %d bytes, the stored file %d (%v)", which.name, u, len(b), len(want), err)
				}
			}
		}
		// The report's own content comes before the week at a glance.
		if i, j := strings.Index(e.html, `class="files"`), strings.Index(e.html, `id="kpis"`); j >= 0 && i > j {
			t.Errorf("the %s email shows the week at a glance before its own files", which.name)
		}
	}
}

// A link signed to expire is refused once it has: tally resend, with links
// that last a second, then a wait.
func TestAnExpiredDownloadLinkIsRefused(t *testing.T) {
	s := demoSite(t)
	files, _ := filepath.Glob(filepath.Join(s.data, "outbox", "reports-daily", "*", "demo-flex", "*-g1.eml"))
	if len(files) == 0 {
		t.Fatal("make demo left no daily flex email")
	}
	period := filepath.Base(filepath.Dir(filepath.Dir(files[0])))
	resend := exec.Command(s.bin, "--config", s.config, "--log-level", "error", "resend", "reports-daily/"+period+"/0001")
	resend.Env = append(os.Environ(), "TALLY_REPORTS_LINK_EXPIRY=2s")
	if out, err := resend.CombinedOutput(); err != nil {
		t.Fatalf("tally resend: %v\n%s", err, out)
	}
	again, _ := filepath.Glob(filepath.Join(s.data, "outbox", "reports-daily", period, "demo-flex", "*-g2.eml"))
	if len(again) == 0 {
		t.Fatal("tally resend left no second email")
	}
	e := readEmail(t, again[0])
	var link string
	for _, l := range hrefRE.FindAllStringSubmatch(e.html, -1) {
		if strings.Contains(l[1], "/files/") {
			link = strings.ReplaceAll(l[1], "&amp;", "&")
			break
		}
	}
	if link == "" {
		t.Fatal("the resent email has no file link")
	}
	if resp, err := client.Get(link); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the fresh link: %v %v", resp, err)
	}
	time.Sleep(2500 * time.Millisecond)
	resp, err := client.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone || !strings.Contains(string(body), "expired") {
		t.Errorf("the expired link: %d, want 410 saying it expired", resp.StatusCode)
	}
	// A link whose signature is not tally's is refused too.
	if resp, err := client.Get(strings.Replace(link, "&s=", "&s=x", 1)); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a forged link: %v %v, want 403", resp.StatusCode, err)
	}
}

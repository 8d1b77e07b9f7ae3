package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"

	"tally/jobs"
	"tally/links"
	"tally/model"
	"tally/periods"
	"tally/runner"
	"tally/storage"
	"tally/subscriptions"
)

type fileLink struct {
	Region, Name, Href, Format string
	Rows                       int64
}

type subscriptionView struct {
	*subscriptions.Subscription
	Period, RunID string
	Files         []fileLink
	Error         string
}

// reports lists the subscriptions and the files of each one's latest report run.
func (c *Console) reports(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	subs, err := (&subscriptions.Store{S: c.Stores.Control}).List(ctx)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	latest, err := c.latestReports(ctx)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	var views []subscriptionView
	for _, s := range subs {
		v := subscriptionView{Subscription: s}
		if l, ok := latest[s.ID]; ok {
			v.Period, v.RunID, v.Error = l.period, l.runID, l.sr.Error
			for _, f := range l.sr.Files {
				href, err := c.href(ctx, f)
				if err != nil {
					v.Error = err.Error()
					continue
				}
				v.Files = append(v.Files, fileLink{Region: f.Region, Name: f.Name, Href: href, Format: f.Format, Rows: f.Rows})
			}
		}
		views = append(views, v)
	}
	c.render(w, r, http.StatusOK, "reports.html", map[string]any{"Subscriptions": views})
}

type latestReport struct {
	period, runID string
	sr            *jobs.SubscriptionReport
}

// latestReports is, per subscription, its newest succeeded report run.
func (c *Console) latestReports(ctx context.Context) (map[string]latestReport, error) {
	out := map[string]latestReport{}
	for _, name := range []string{jobs.ReportsJob(periods.Daily), jobs.ReportsJob(periods.Weekly), jobs.ReportsJob(periods.Monthly)} {
		recs, err := c.ledger.All(ctx, name)
		if err != nil {
			return nil, err
		}
		sort.Slice(recs, func(i, j int) bool { return recs[i].Period > recs[j].Period })
		for _, rec := range recs {
			if rec.Status != runner.StatusSucceeded {
				continue
			}
			reports, ok := jobs.ReportsOf(rec)
			if !ok {
				continue
			}
			for id, sr := range reports {
				if _, ok := out[id]; !ok { // newest first: the first seen is the latest

					out[id] = latestReport{period: rec.Period, runID: rec.RunID, sr: sr}
				}
			}
		}
	}
	return out, nil
}

// href is where the console's user downloads a report file: a presigned (or
// base_url) link when storage gives one, else the console's own /files route.
func (c *Console) href(ctx context.Context, f jobs.ReportFile) (string, error) {
	if c.Links != nil {
		link, err := c.Links.Link(ctx, f.Region, f.Key, f.Name)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(link, "https://") || strings.HasPrefix(link, "http://") {
			return link, nil
		}
	}
	return "/files/" + url.PathEscape(f.Region) + "/" + (&url.URL{Path: f.Key}).EscapedPath(), nil
}

// file serves one of a region's data files (servable: its tables, quarantine
// and reports; keys validated, so no "..", no absolute path) from its store,
// which reads only regular files reached without a symlink: nothing else of
// the data directory, or outside it, can be read.
func (c *Console) file(w http.ResponseWriter, r *http.Request) {
	region, key := r.PathValue("region"), r.PathValue("key")
	// A report email's link is signed and works without a login until it
	// expires; anything else is the console's, for who is logged in.
	if q := r.URL.Query(); links.IsSigned(q) {
		expires, err := links.Verify(c.Key, region, key, q, c.Clock.Now())
		switch {
		case errors.Is(err, links.ErrExpired):
			c.fail(w, r, http.StatusGone, fmt.Errorf("this download link expired on %s; ask for the report again (tally resend sends new links)", expires.Format("2006-01-02 15:04 UTC")))
			return
		case err != nil:
			c.fail(w, r, http.StatusForbidden, err)
			return
		}
	} else if identityOf(r) == nil {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("no such page"))
		return
	}
	if !model.ValidRegion(region) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("no region %q", region))
		return
	}
	if !servable(region, key) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("not a data file of region %s: %q", region, key))
		return
	}
	store, err := c.Stores.For(region)
	if err != nil {
		c.fail(w, r, http.StatusNotFound, err)
		return
	}
	rc, obj, err := store.Get(r.Context(), key)
	if errors.Is(err, storage.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("file %s is not in region %s's storage (removed by retention, or not a regular file)", key, region))
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	defer rc.Close()
	name := path.Base(key)
	h := w.Header()
	h.Set("Content-Type", contentType(name))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Content-Length", fmt.Sprint(obj.Size))
	h.Set("Cache-Control", "private, no-store")
	io.Copy(w, rc)
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".csv":
		return "text/csv; charset=utf-8"
	case ".parquet":
		return "application/vnd.apache.parquet"
	case ".xlsx":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	return "application/octet-stream"
}

// unsubscribePage asks to confirm: a GET never changes anything (mail
// scanners follow links), the button POSTs.
func (c *Console) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("t")
	sub, addr, err := c.parseToken(token)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	s, err := (&subscriptions.Store{S: c.Stores.Control}).Get(r.Context(), sub)
	if c.subscriptionFailed(w, r, sub, err) {
		return
	}
	c.render(w, r, http.StatusOK, "unsubscribe.html", map[string]any{"Token": token, "Subscription": s, "Address": addr, "Member": isRecipient(s, addr)})
}

// unsubscribe removes the token's recipient from its subscription: the
// confirmation button's POST and RFC 8058's one-click POST alike.
func (c *Console) unsubscribe(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	r.ParseForm()
	token := r.URL.Query().Get("t")
	if token == "" {
		token = r.PostForm.Get("t")
	}
	sub, addr, err := c.parseToken(token)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	s, err := (&subscriptions.Store{S: c.Stores.Control}).Update(r.Context(), sub, subscriptions.RemoveRecipient(addr, c.Clock.Now()))
	if c.subscriptionFailed(w, r, sub, err) {
		return
	}
	c.Log.Info().Str("subscription", sub).Str("recipient", addr).Msg("unsubscribed through an email's link")
	c.render(w, r, http.StatusOK, "unsubscribed.html", map[string]any{"Subscription": s, "Address": addr})
}

// subscriptionFailed answers a failed read or update of subscription sub: a
// 404 when it is gone (nothing more is sent to anyone), else a 500.
func (c *Console) subscriptionFailed(w http.ResponseWriter, r *http.Request, sub string, err error) bool {
	switch {
	case errors.Is(err, subscriptions.ErrNotFound):
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("subscription %s no longer exists: nothing more will be sent", sub))
	case err != nil:
		c.fail(w, r, http.StatusInternalServerError, err)
	}
	return err != nil
}

func (c *Console) parseToken(token string) (string, string, error) {
	if len(c.Key) == 0 {
		return "", "", errors.New("this console has no unsubscribe key (serve.unsubscribe_key_file)")
	}
	return subscriptions.ParseToken(c.Key, token)
}

func isRecipient(s *subscriptions.Subscription, addr string) bool {
	for _, r := range s.Recipients {
		if strings.EqualFold(r, addr) {
			return true
		}
	}
	return false
}

// Package links owns the links report emails carry to their files: under
// reports.base_url (a web server the operator runs), presigned on S3, signed
// for tally serve's /files/ route on local storage when serve.public_url is
// set, or file:// as the last resort.
package links

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"tally/storage"
)

// Kinds of link, by precedence.
const (
	BaseURL   = "base_url"  // reports.base_url/<key>
	Presigned = "presigned" // S3 presigned GET
	Signed    = "signed"    // <serve.public_url>/files/<region>/<key>?e=&s=
	File      = "file"      // file:// (opens only on the machine that has the files)
)

// Presigner is a store that signs download links (S3).
type Presigner interface {
	Link(ctx context.Context, key, name string, expiry time.Duration) (string, error)
}

// Maker makes the links of report files.
type Maker struct {
	Stores storage.Regional
	// BaseURL (reports.base_url) wins over everything: <BaseURL>/<key>.
	BaseURL string
	// PublicURL (serve.public_url): on local storage, links to serve's
	// /files/ route, signed with Key and valid for Expiry.
	PublicURL string
	Key       func(ctx context.Context) ([]byte, error)
	// Expiry is reports.link_expiry: presigned and signed links alike.
	Expiry time.Duration
	Now    func() time.Time
}

// Kind is the kind of link region's files get.
func (m *Maker) Kind(region string) string {
	if m.BaseURL != "" {
		return BaseURL
	}
	if s, err := m.Stores.For(region); err == nil {
		if _, ok := storage.As[Presigner](s); ok {
			return Presigned
		}
	}
	if m.PublicURL != "" && m.Key != nil {
		return Signed
	}
	return File
}

// Link is the link to key in region's store; name is the file's download name.
func (m *Maker) Link(ctx context.Context, region, key, name string) (string, error) {
	switch m.Kind(region) {
	case BaseURL:
		return strings.TrimSuffix(m.BaseURL, "/") + "/" + (&url.URL{Path: key}).EscapedPath(), nil
	case Presigned:
		s, _ := m.Stores.For(region)
		p, _ := storage.As[Presigner](s)
		return p.Link(ctx, key, name, m.Expiry)
	case Signed:
		k, err := m.Key(ctx)
		if err != nil {
			return "", fmt.Errorf("link signing key: %w", err)
		}
		return strings.TrimSuffix(m.PublicURL, "/") + Path(region, key) + "?" + Sign(k, region, key, m.Now().Add(m.Expiry)), nil
	}
	s, err := m.Stores.For(region)
	if err != nil {
		return "", err
	}
	return s.URL(ctx, key)
}

// Validity says how long the links work, for the email's footer.
func (m *Maker) Validity() string {
	for region := range m.Stores.Regions {
		if kind := m.Kind(region); kind == Presigned || kind == Signed {
			if m.Expiry%(24*time.Hour) == 0 {
				return fmt.Sprintf("%d days", m.Expiry/(24*time.Hour))
			}
			return m.Expiry.String()
		}
	}
	return "as long as the files are kept"
}

// Path is serve's route to a region's file.
func Path(region, key string) string {
	return "/files/" + url.PathEscape(region) + "/" + (&url.URL{Path: key}).EscapedPath()
}

// Sign is the query ("e=<unix expiry>&s=<signature>") that lets serve hand
// out region's key without a login until expires.
func Sign(k []byte, region, key string, expires time.Time) string {
	e := strconv.FormatInt(expires.Unix(), 10)
	return "e=" + e + "&s=" + mac(k, region, key, e)
}

// Errors of Verify.
var (
	ErrExpired  = errors.New("the link has expired")
	ErrBadLink  = errors.New("the link's signature is not tally's")
	ErrUnsigned = errors.New("the link is not signed")
)

// Signed reports whether a request's query carries a signature.
func IsSigned(q url.Values) bool { return q.Has("s") }

// Verify checks a signed link's query for region's key at now.
func Verify(k []byte, region, key string, q url.Values, now time.Time) (expires time.Time, err error) {
	e, s := q.Get("e"), q.Get("s")
	if s == "" {
		return time.Time{}, ErrUnsigned
	}
	unix, err := strconv.ParseInt(e, 10, 64)
	if err != nil || !hmac.Equal([]byte(s), []byte(mac(k, region, key, e))) {
		return time.Time{}, ErrBadLink
	}
	expires = time.Unix(unix, 0).UTC()
	if !now.Before(expires) {
		return expires, ErrExpired
	}
	return expires, nil
}

// mac signs a link, apart from anything else the key signs (unsubscribe
// tokens, forms): the message starts with its purpose.
func mac(k []byte, region, key, expires string) string {
	h := hmac.New(sha256.New, k)
	h.Write([]byte("tally download link\n" + region + "\n" + key + "\n" + expires))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

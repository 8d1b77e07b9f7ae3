package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"syscall"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// SMTPConfig is how to reach the SMTP server.
type SMTPConfig struct {
	Host     string
	Port     int
	TLS      string // starttls (required), tls (implicit), none
	Username string
	Password string
	Timeout  time.Duration
}

// SMTP sends over SMTP, one connection per message.
type SMTP struct {
	cfg  SMTPConfig
	opts []gomail.Option
}

// NewSMTP checks cfg and prepares a sender.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	opts := []gomail.Option{gomail.WithPort(cfg.Port), gomail.WithTimeout(cfg.Timeout)}
	switch cfg.TLS {
	case "starttls", "":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "tls":
		opts = append(opts, gomail.WithSSL())
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		return nil, fmt.Errorf("smtp.tls %q: starttls, tls or none", cfg.TLS)
	}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	return &SMTP{cfg: cfg, opts: opts}, nil
}

// Where is smtp://host:port.
func (s *SMTP) Where() string { return fmt.Sprintf("smtp://%s:%d", s.cfg.Host, s.cfg.Port) }

// SendError is a message the server did not accept: at which step, and
// whether trying again could help (a 4xx answer, a network error) or not (a
// 5xx answer, a refused login, TLS the server does not offer).
type SendError struct {
	Where, Step string
	Permanent   bool
	Err         error
}

func (e *SendError) Error() string {
	kind := "temporary"
	if e.Permanent {
		kind = "permanent"
	}
	return fmt.Sprintf("smtp %s: %s: %v (%s)", e.Where, e.Step, e.Err, kind)
}

func (e *SendError) Unwrap() error { return e.Err }

// Permanent reports whether err is a refusal that trying again does not change.
func Permanent(err error) bool {
	var se *SendError
	return errors.As(err, &se) && se.Permanent
}

// AfterAcceptError is an error on a connection after the server accepted the
// message: the message is delivered; the error is only worth a warning.
type AfterAcceptError struct{ Err error }

func (e *AfterAcceptError) Error() string {
	return "the server accepted the message, then: " + e.Err.Error()
}

func (e *AfterAcceptError) Unwrap() error { return e.Err }

// permanent classifies an SMTP error: a 5xx answer, or a refusal that is the
// configuration's (no AUTH, no STARTTLS, a certificate not trusted), is
// permanent; a 4xx answer and network errors are not.
func permanent(err error) bool {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code >= 500
	}
	var ne net.Error
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &cv), errors.As(err, &ua):
		return true
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return false
	}
	return true // go-mail's own refusals: no AUTH offered, STARTTLS required but not offered
}

func (s *SMTP) fail(step string, err error) error {
	return &SendError{Where: s.Where(), Step: step, Permanent: permanent(err), Err: err}
}

// dial connects, says EHLO, starts TLS and logs in, as configured. The
// connection is tally's own (go-mail leaves it open when EHLO, STARTTLS or
// AUTH fails), so it is closed on any failure.
func (s *SMTP) dial(ctx context.Context) (*smtp.Client, error) {
	var conn net.Conn
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var err error
		nd := &net.Dialer{}
		if s.cfg.TLS == "tls" {
			conn, err = (&tls.Dialer{NetDialer: nd, Config: &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}}).DialContext(ctx, network, addr)
		} else {
			conn, err = nd.DialContext(ctx, network, addr)
		}
		return conn, err
	}
	c, err := gomail.NewClient(s.cfg.Host, append(s.opts, gomail.WithDialContextFunc(dial))...)
	if err != nil {
		return nil, &SendError{Where: s.Where(), Step: "configure", Permanent: true, Err: err}
	}
	client, err := c.DialToSMTPClientWithContext(ctx)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, s.fail("connect, EHLO, STARTTLS and AUTH", err)
	}
	return client, nil
}

// Check proves the server takes tally's login: it connects, says EHLO,
// starts TLS and authenticates as configured, then quits; no mail is sent.
func (s *SMTP) Check(ctx context.Context) error {
	client, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Quit(); err != nil {
		return s.fail("QUIT", err)
	}
	return nil
}

// Send delivers m: MAIL, RCPT and DATA on a new connection. The server's 250
// to the DATA is delivery: m.Accepted runs at once, and an error after it
// (RSET, QUIT, a dropped connection) is an *AfterAcceptError, never a failed
// send. An error before it is a *SendError.
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	msg, err := m.build()
	if err != nil {
		return &SendError{Where: s.Where(), Step: "build", Permanent: true, Err: err}
	}
	from, err := msg.GetSender(false)
	if err != nil {
		return &SendError{Where: s.Where(), Step: "sender", Permanent: true, Err: err}
	}
	rcpts, err := msg.GetRecipients()
	if err != nil {
		return &SendError{Where: s.Where(), Step: "recipients", Permanent: true, Err: err}
	}
	client, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	stop := context.AfterFunc(ctx, func() { client.Close() }) // a cancelled run cuts the connection
	defer stop()
	if err := client.Mail(from); err != nil {
		return s.fail("MAIL FROM", err)
	}
	for _, r := range rcpts {
		if err := client.Rcpt(r); err != nil {
			return s.fail("RCPT TO <"+r+">", err)
		}
	}
	w, err := client.Data()
	if err != nil {
		return s.fail("DATA", err)
	}
	if _, err := msg.WriteTo(w); err != nil {
		return s.fail("DATA (the message)", err)
	}
	if err := w.Close(); err != nil { // the server's answer to the message
		return s.fail("DATA (the server's answer)", err)
	}
	if m.Accepted != nil {
		m.Accepted()
	}
	if err := client.Quit(); err != nil {
		return &AfterAcceptError{Err: fmt.Errorf("smtp %s: QUIT: %w", s.Where(), err)}
	}
	return nil
}

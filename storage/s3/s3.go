// Package s3 is the storage.Store on S3-compatible object storage (AWS S3, MinIO,
// Ceph RGW…) with aws-sdk-go-v2: streamed multipart uploads that appear only when
// complete, conditional writes for leases, and presigned download links.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"tally/storage"
)

var _ storage.Store = (*Store)(nil)

// MaxLinkExpiry is the longest a SigV4 presigned link can live.
const MaxLinkExpiry = 7 * 24 * time.Hour

// Config is one bucket (and prefix) on an S3-compatible endpoint.
type Config struct {
	Endpoint       string // "" for AWS
	Region         string
	Bucket         string
	Prefix         string // keys live under <prefix>/
	PathStyle      bool   // MinIO and most non-AWS servers
	AccessKey      string // static credentials; empty: the standard AWS chain (env, files, IAM)
	SecretKey      string
	PublicEndpoint string        // signs links for this endpoint (recipients cannot reach an internal one)
	LinkExpiry     time.Duration // default and maximum 7 days
	PartSize       int64         // multipart part size (default 8 MiB)
	MaxAttempts    int           // per request, for throttling and 5xx (default 5)
}

// Store is a bucket and prefix.
type Store struct {
	client   *s3.Client
	presign  *s3.PresignClient
	uploader *manager.Uploader
	bucket   string
	prefix   string
	endpoint string
	expiry   time.Duration
}

// New connects to the bucket described by cfg (no request is made yet).
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: bucket is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.LinkExpiry <= 0 || cfg.LinkExpiry > MaxLinkExpiry {
		cfg.LinkExpiry = MaxLinkExpiry
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = 8 << 20
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region), config.WithRetryMaxAttempts(cfg.MaxAttempts)}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	clientFor := func(endpoint string) *s3.Client {
		return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
			o.UsePathStyle = cfg.PathStyle
			// S3-compatible servers differ in checksum support; send them only when required.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
			o.DisableLogOutputChecksumValidationSkipped = true
		})
	}
	client := clientFor(cfg.Endpoint)
	public := client
	if cfg.PublicEndpoint != "" {
		public = clientFor(cfg.PublicEndpoint)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{
		client:  client,
		presign: s3.NewPresignClient(public),
		uploader: manager.NewUploader(client, func(u *manager.Uploader) {
			u.PartSize = cfg.PartSize
			u.Concurrency = 2
			u.LeavePartsOnError = false // a failed upload is aborted: no object, no stray parts
		}),
		bucket:   cfg.Bucket,
		prefix:   prefix,
		endpoint: endpointName(cfg.Endpoint),
		expiry:   cfg.LinkExpiry,
	}, nil
}

func endpointName(e string) string {
	if e == "" {
		return "AWS S3"
	}
	return e
}

func (s *Store) key(k string) (string, error) {
	if err := storage.ValidateKey(k); err != nil {
		return "", err
	}
	return s.prefix + k, nil
}

// translate maps S3 errors to storage's.
func (s *Store) translate(op, key string, err error) error {
	if err == nil {
		return nil
	}
	// By error code, or by HTTP status where the server sent no code (HEAD).
	var apiErr smithy.APIError
	var re *awshttp.ResponseError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	switch code {
	case "NoSuchBucket":
		return fmt.Errorf("s3: %s %s: %w: bucket %q does not exist at %s (storage.s3.bucket)", op, key, storage.ErrMisconfigured, s.bucket, s.endpoint)
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "AccessDenied", "AuthorizationHeaderMalformed":
		return fmt.Errorf("s3: %s %s: %w: %s refused the credentials (%s): check storage.s3.access_key_file and secret_key_file, or the AWS credential chain", op, key, storage.ErrMisconfigured, s.endpoint, code)
	}
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound"),
		errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		err = storage.ErrNotFound
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed",
		errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed:
		err = storage.ErrPreconditionFailed
	}
	return fmt.Errorf("s3: %s %s: %w", op, key, err)
}

func object(key string, size *int64, etag *string, mod *time.Time) storage.Object {
	o := storage.Object{Key: key, ETag: aws.ToString(etag)}
	if size != nil {
		o.Size = *size
	}
	if mod != nil {
		o.ModTime = mod.UTC()
	}
	return o
}

// Put streams r as a multipart upload (parts of PartSize, a bounded number in
// memory); the object appears only when the upload completes, and a failed or
// cancelled upload is aborted.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (storage.Object, error) {
	k, err := s.key(key)
	if err != nil {
		return storage.Object{}, err
	}
	if _, err := s.uploader.Upload(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &k, Body: r}); err != nil {
		// The uploader aborts a failed multipart upload with the caller's context,
		// which fails when that context was cancelled: abort it again on our own.
		var mu manager.MultiUploadFailure
		if errors.As(err, &mu) {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &k, UploadId: aws.String(mu.UploadID())})
			cancel()
		}
		return storage.Object{}, s.translate("put", key, err)
	}
	return s.Stat(ctx, key)
}

// Get opens key for reading.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.Object, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, storage.Object{}, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return nil, storage.Object{}, s.translate("get", key, err)
	}
	return out.Body, object(key, out.ContentLength, out.ETag, out.LastModified), nil
}

// Stat describes key.
func (s *Store) Stat(ctx context.Context, key string) (storage.Object, error) {
	k, err := s.key(key)
	if err != nil {
		return storage.Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return storage.Object{}, s.translate("stat", key, err)
	}
	return object(key, out.ContentLength, out.ETag, out.LastModified), nil
}

// List returns the objects under prefix, sorted by key (S3 lists in key order).
func (s *Store) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	full := s.prefix + prefix
	var out []storage.Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &full})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.translate("list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, object(strings.TrimPrefix(aws.ToString(o.Key), s.prefix), o.Size, o.ETag, o.LastModified))
		}
	}
	return out, nil
}

// Delete removes key.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &k})
	if err = s.translate("delete", key, err); errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// Create writes data only if key does not exist: a PUT with If-None-Match: *.
func (s *Store) Create(ctx context.Context, key string, data []byte) (storage.Object, error) {
	k, err := s.key(key)
	if err != nil {
		return storage.Object{}, err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data), IfNoneMatch: aws.String("*")})
	if err = s.translate("create", key, err); errors.Is(err, storage.ErrPreconditionFailed) {
		if s.landed(ctx, key, data) {
			return s.Stat(ctx, key)
		}
		return storage.Object{}, fmt.Errorf("s3: create %s: %w", key, storage.ErrExists)
	} else if err != nil {
		return storage.Object{}, err
	}
	return s.Stat(ctx, key)
}

// Replace writes data only if key's ETag is etag: a PUT with If-Match (never a
// conditional DELETE, whose conditions some servers ignore).
func (s *Store) Replace(ctx context.Context, key, etag string, data []byte) (storage.Object, error) {
	k, err := s.key(key)
	if err != nil {
		return storage.Object{}, err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data), IfMatch: aws.String(etag)})
	if err := s.translate("replace", key, err); err != nil {
		if errors.Is(err, storage.ErrPreconditionFailed) && s.landed(ctx, key, data) {
			return s.Stat(ctx, key)
		}
		return storage.Object{}, err
	}
	return s.Stat(ctx, key)
}

// landed reports whether key holds exactly data. The SDK retries a conditional
// PUT whose response was lost on a broken connection; the retry then answers 412
// although the first try succeeded. Every conditional write tally makes carries
// a token of its writer, so equal bytes mean our own write landed.
func (s *Store) landed(ctx context.Context, key string, data []byte) bool {
	b, _, err := storage.ReadAll(ctx, s, key)
	return err == nil && bytes.Equal(b, data)
}

// URL is a presigned GET link, valid for the configured time, that downloads
// the file under its own name.
func (s *Store) URL(ctx context.Context, key string) (string, error) {
	return s.Link(ctx, key, path.Base(key), s.expiry)
}

// Link presigns a GET of key for the public endpoint with
// Content-Disposition: attachment; filename="<name>".
func (s *Store) Link(ctx context.Context, key, name string, expiry time.Duration) (string, error) {
	k, err := s.key(key)
	if err != nil {
		return "", err
	}
	if expiry <= 0 || expiry > MaxLinkExpiry {
		expiry = s.expiry
	}
	name = strings.NewReplacer(`"`, "", "\r", "", "\n", "").Replace(name)
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k,
		ResponseContentDisposition: aws.String(fmt.Sprintf(`attachment; filename="%s"`, name))},
		s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("s3: presign %s: %w", key, err)
	}
	return req.URL, nil
}

// Expiry is how long links last.
func (s *Store) Expiry() time.Duration { return s.expiry }

// EnsureBucket creates the bucket if it does not exist (tests, first runs).
func (s *Store) EnsureBucket(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err == nil {
		return nil
	}
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	if err != nil {
		return fmt.Errorf("s3: create bucket %s: %w", s.bucket, err)
	}
	return nil
}

// PendingUploads counts multipart uploads not completed nor aborted (tests: a
// cancelled upload must leave none).
func (s *Store) PendingUploads(ctx context.Context) (int, error) {
	out, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.bucket})
	if err != nil {
		return 0, err
	}
	return len(out.Uploads), nil
}

var _ storage.Collector = (*Store)(nil)

// Leftovers are the incomplete multipart uploads under the store's prefix: an
// upload whose process was killed is neither completed nor aborted. (An S3
// lifecycle rule with AbortIncompleteMultipartUpload is the production answer;
// tally gc cleans up where there is none.)
func (s *Store) Leftovers(ctx context.Context) ([]storage.Leftover, error) {
	var out []storage.Leftover
	// No Prefix in the request: MinIO answers a prefix only when it is a whole
	// key (minio/minio#20989); the store's own prefix is filtered here instead.
	in := &s3.ListMultipartUploadsInput{Bucket: &s.bucket}
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, s.translate("list uploads", s.prefix, err)
		}
		for _, u := range page.Uploads {
			if !strings.HasPrefix(aws.ToString(u.Key), s.prefix) {
				continue
			}
			l := storage.Leftover{Kind: "upload", Key: strings.TrimPrefix(aws.ToString(u.Key), s.prefix), ID: aws.ToString(u.UploadId)}
			if u.Initiated != nil {
				l.Since = u.Initiated.UTC()
			}
			if l.Size, err = s.uploadedBytes(ctx, u.Key, u.UploadId); err != nil {
				return nil, err
			}
			out = append(out, l)
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// uploadedBytes adds up the parts an incomplete upload holds (what aborting
// it frees).
func (s *Store) uploadedBytes(ctx context.Context, key, id *string) (int64, error) {
	var n int64
	in := &s3.ListPartsInput{Bucket: &s.bucket, Key: key, UploadId: id}
	for {
		page, err := s.client.ListParts(ctx, in)
		if err != nil {
			if err = s.translate("list parts", aws.ToString(key), err); errors.Is(err, storage.ErrNotFound) {
				return n, nil // completed or aborted meanwhile
			}
			return 0, err
		}
		for _, p := range page.Parts {
			n += aws.ToInt64(p.Size)
		}
		if !aws.ToBool(page.IsTruncated) {
			return n, nil
		}
		in.PartNumberMarker = page.NextPartNumberMarker
	}
}

// RemoveLeftover aborts one incomplete upload.
func (s *Store) RemoveLeftover(ctx context.Context, l storage.Leftover) error {
	if l.Kind != "upload" {
		return fmt.Errorf("s3: %q is not an upload", l.Key)
	}
	k, err := s.key(l.Key)
	if err != nil {
		return err
	}
	_, err = s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &k, UploadId: aws.String(l.ID)})
	if err = s.translate("abort upload", l.Key, err); errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

package transcript

// Key describes a header key.
type Key struct {
	// Config is set for keys that configure the server under test. A
	// server on the network cannot be told about them, so smtpconform
	// skips the cases that use them.
	Config bool
	// Extension names the SMTP extension a reserved key needs. The keys
	// are reserved so that the cases of extensions the library does not
	// have yet slot in; a runner that cannot honour one must fail the
	// case, never ignore the key.
	Extension string
}

// Keys are the header keys a transcript may use; any other key is a parse
// error. conformance/testdata/README.md says what each one means.
var Keys = map[string]Key{
	// What the case needs from any server: EHLO keywords.
	"needs": {},
	// Whether the delivered message starts with the Received field the
	// server adds (off by default, so that deliveries compare exactly).
	"received": {},

	"hostname":              {Config: true},
	"banner":                {Config: true},
	"max-message-bytes":     {Config: true},
	"max-recipients":        {Config: true},
	"max-line-length":       {Config: true},
	"max-command-length":    {Config: true},
	"max-local-part":        {Config: true},
	"max-domain":            {Config: true},
	"max-path":              {Config: true},
	"max-errors":            {Config: true},
	"max-connections":       {Config: true},
	"command-timeout":       {Config: true},
	"data-timeout":          {Config: true},
	"message-timeout":       {Config: true},
	"delivery-timeout":      {Config: true},
	"accept-bare-line-ends": {Config: true},
	"refuse-connection":     {Config: true},
	"refuse-hello":          {Config: true},
	"refuse-sender":         {Config: true},
	"refuse-recipient":      {Config: true},
	"handler":               {Config: true},
	"verify":                {Config: true},
	"expand":                {Config: true},

	// Reserved for extensions the library does not have yet.
	"tls":      {Config: true, Extension: "STARTTLS"},
	"auth":     {Config: true, Extension: "AUTH"},
	"chunking": {Config: true, Extension: "CHUNKING"},
	"smtputf8": {Config: true, Extension: "SMTPUTF8"},
	"dsn":      {Config: true, Extension: "DSN"},
	"lmtp":     {Config: true, Extension: "LMTP"},
	"proxy":    {Config: true, Extension: "PROXY"},
}

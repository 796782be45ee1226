package transcript

// Key describes a header key.
type Key struct {
	// Config is set for keys that configure the server under test. A
	// server on the network cannot be told about them, so smtpconform
	// skips the cases that use them, except where it can be told from
	// outside what the target is set up for (Remote).
	Config bool
	// Remote is set for the config keys a remote target may match, given
	// what smtpconform learns from its flags and the target's EHLO reply:
	// tls (STARTTLS offered, or -tls-addr), auth (-auth), lmtp (-lmtp).
	Remote bool
}

// Keys are the header keys a transcript may use; any other key is a parse
// error. conformance/testdata/README.md says what each one means.
var Keys = map[string]Key{
	// What the case needs from any server: EHLO keywords.
	"needs": {},
	// The requirement the case checks: MUST, SHOULD or policy.
	"level": {},
	// "strict": the case checks one of this server's stricter choices,
	// which other conforming servers may make otherwise.
	"profile": {},
	// "yes": the case needs a server that accepts any address (a sink or
	// an open relay), not only the addresses the runner was given.
	"sink": {},
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
	"hold-connections":      {Config: true},
	"command-timeout":       {Config: true},
	"data-timeout":          {Config: true},
	"message-timeout":       {Config: true},
	"delivery-timeout":      {Config: true},
	"accept-bare-line-ends": {Config: true},
	"pipelining-sync":       {Config: true},
	"greet-delay":           {Config: true},
	"refuse-connection":     {Config: true},
	"refuse-hello":          {Config: true},
	"refuse-sender":         {Config: true},
	"refuse-recipient":      {Config: true},
	"handler":               {Config: true},
	"verify":                {Config: true},
	"expand":                {Config: true},

	// One client's share of max-connections (MaxConnectionsPerIP).
	"max-connections-per-ip": {Config: true},

	// Extensions that need setting up: RFC 3207 and RFC 8314, RFC 4954,
	// RFC 2033, the PROXY protocol.
	"tls":                   {Config: true, Remote: true},
	"tls-handshake-timeout": {Config: true},
	"require-tls":           {Config: true},
	"auth":                  {Config: true, Remote: true},
	"auth-insecure":         {Config: true},
	"require-auth":          {Config: true},
	"max-auth-failures":     {Config: true},
	"lmtp":                  {Config: true, Remote: true},
	"lmtp-recipient":        {Config: true},
	"proxy-trusted":         {Config: true},
}

// keyValues lists the values a key allows, for the keys that take one of a
// few words.
var keyValues = map[string][]string{
	"level":   {"MUST", "SHOULD", "policy"},
	"profile": {"strict"},
	"sink":    {"yes"},
}

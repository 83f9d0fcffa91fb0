// Package l7 is the connection-stream probe: the plaintext bytes that
// processes read from and write to their TCP sockets, captured from the
// syscall tracepoints (no kprobe) and published as conn_data events for the
// protocol parsers (derivers) to consume.
package l7

import (
	"context"
	_ "embed"
	"fmt"
	"maps"
	"os"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

// Name is the probe's name in config, metrics and `vigil features`.
const Name = "l7"

// MaxCaptureLimit is the largest max_capture_bytes (the kernel's scratch
// buffer bounds it).
const MaxCaptureLimit = 4096

// Config tunes the probe (probes.l7 in the config file).
type Config struct {
	Enabled     bool   `yaml:"enabled"`
	RingbufSize uint32 `yaml:"ringbuf_size"`
	// MaxCaptureBytes is how many bytes of each read or write are copied,
	// from the start of the buffer; the syscall's true length is always
	// reported and a shorter capture is flagged.
	MaxCaptureBytes uint32 `yaml:"max_capture_bytes"`
	// MaxConnections bounds the connection table (LRU).
	MaxConnections uint32 `yaml:"max_connections"`
	ExcludeSelf    bool   `yaml:"exclude_self"`
	// PIDs restricts capture to these processes (empty: all).
	PIDs []uint32 `yaml:"pids"`
	// TLS is plaintext from TLS libraries (openssl.go).
	TLS TLSConfig `yaml:"tls"`
}

// DefaultConfig is the embedded default.
func DefaultConfig() *Config {
	return &Config{Enabled: false, RingbufSize: 4 << 20, MaxCaptureBytes: 256, MaxConnections: 16384, ExcludeSelf: true,
		TLS: TLSConfig{OpenSSL: true, Go: true, RescanInterval: 2 * time.Second, MaxBinaries: 64}}
}

// IsEnabled implements probe.Config.
func (c *Config) IsEnabled() bool { return c.Enabled }

const maxPIDs = 1024 // size of the kernel's pid filter

// Validate implements probe.Config.
func (c *Config) Validate() error {
	if err := probe.ValidateRingSize(c.RingbufSize); err != nil {
		return err
	}
	if c.MaxCaptureBytes > MaxCaptureLimit {
		return fmt.Errorf("max_capture_bytes: %d is more than %d", c.MaxCaptureBytes, MaxCaptureLimit)
	}
	if c.MaxConnections < 16 || c.MaxConnections > 1<<22 {
		return fmt.Errorf("max_connections: %d must be between 16 and 4194304", c.MaxConnections)
	}
	if len(c.PIDs) > maxPIDs {
		return fmt.Errorf("pids: %d entries, at most %d", len(c.PIDs), maxPIDs)
	}
	for _, pid := range c.PIDs {
		if pid == 0 {
			return fmt.Errorf("pids: 0 is not a process id")
		}
	}
	return c.TLS.validate()
}

//go:embed defaults.yaml
var defaultsYAML []byte

func init() {
	probe.Register(probe.Spec{
		Name:           Name,
		DefaultYAML:    defaultsYAML,
		Help:           "TCP connection data: a bounded prefix of every read and write on TCP sockets learnt from connect and accept, from the syscall tracepoints (the input of the L7 protocol parsers)",
		DefaultEnabled: false,
		Events:         kinds,
		NewConfig:      func() probe.Config { return DefaultConfig() },
		New:            func(c probe.Config) (probe.Probe, error) { return New(c.(*Config)), nil },
	})
}

// dataSyscalls are the syscalls whose data is captured.
var dataSyscalls = []string{"read", "readv", "recvfrom", "recvmsg", "recvmmsg", "write", "writev", "sendto", "sendmsg", "sendmmsg"}

// Programs lists the logical programs: all required (a missing one would
// leave a silent gap in a stream).
func Programs() []kernel.ProgramDef {
	tp := func(prog, name string) kernel.ProgramDef {
		return kernel.ProgramDef{Name: name, Required: true, Hooks: []kernel.Hook{
			{Kind: kernel.Tracepoint, Program: prog, Target: "syscalls/" + name}}}
	}
	defs := []kernel.ProgramDef{
		tp("tp_enter_connect", "sys_enter_connect"),
		tp("tp_exit_connect", "sys_exit_connect"),
		tp("tp_exit_accept", "sys_exit_accept"),
		tp("tp_exit_accept4", "sys_exit_accept4"),
		tp("tp_enter_close", "sys_enter_close"),
	}
	for _, s := range dataSyscalls {
		defs = append(defs, tp("tp_enter_"+s, "sys_enter_"+s), tp("tp_exit_"+s, "sys_exit_"+s))
	}
	return defs
}

// Probe is the running connection-stream probe.
type Probe struct {
	probe.Base
	cfg     *Config
	maps    readMaps
	seeded  uint64        // connections seeded from /proc at start
	goTLS   *goTLS        // nil: tls.go off
	disc    *discoverer   // processes found at run time (discover.go)
	openssl *opensslHooks // nil: tls.openssl off
	redact  *redactors    // header redaction state per stream (redact.go)
}

// readMaps are the maps user space reads or fills.
type readMaps struct {
	Conns    *ebpf.Map `ebpf:"conns"`
	Counters *ebpf.Map `ebpf:"counters"`
	PIDs     *ebpf.Map `ebpf:"pids"`

	TLSCounters *ebpf.Map `ebpf:"tls_counters"`
}

// New returns an unstarted probe.
func New(cfg *Config) *Probe {
	return &Probe{Base: probe.Base{Name: Name}, cfg: cfg, redact: redactorsFor(cfg.MaxConnections)}
}

// Start implements probe.Probe.
func (p *Probe) Start(env *probe.Env) error {
	spec, err := loadL7()
	if err != nil {
		return fmt.Errorf("%s: reading embedded BPF object: %w", Name, err)
	}
	var self uint32
	if p.cfg.ExcludeSelf {
		self = uint32(os.Getpid())
	}
	opts := kernel.LoadOptions{
		Programs: Programs(),
		Constants: map[string]any{
			"max_capture_bytes": p.cfg.MaxCaptureBytes,
			"filter_pids":       len(p.cfg.PIDs) > 0,
			"self_tgid":         self,
		},
		MapSizes: map[string]uint32{
			"events": p.cfg.RingbufSize,
			"conns":  p.cfg.MaxConnections,
		},
	}
	maps.Copy(opts.Constants, goTLSConstants())
	if p.cfg.TLS.Go {
		opts.Later = append(opts.Later, goTLSPrograms...)
	}
	if p.cfg.TLS.OpenSSL {
		opts.Later = append(opts.Later, opensslPrograms()...)
	}
	if err := p.Load(env, spec, opts); err != nil {
		return err
	}
	if err := p.Obj.Assign(&p.maps); err != nil {
		_ = p.Close()
		p.Obj = nil
		return err
	}
	// The filter is read only when connections are learnt; fill it before
	// any can be (programs are attached, but a process listed here that
	// connects in this instant is missed at worst).
	for _, pid := range p.cfg.PIDs {
		if err := p.maps.PIDs.Put(pid, uint8(1)); err != nil {
			_ = p.Close()
			p.Obj = nil
			return fmt.Errorf("%s: pid filter: %w", Name, err)
		}
	}
	// Connections open before now: seeded after the programs are attached,
	// so one opened meanwhile is learnt by the kernel (which then wins).
	n, err := p.seed("/proc", self)
	if err != nil {
		env.Log.Warn("l7: seeding open connections from /proc", "err", err)
	}
	p.seeded = uint64(n)
	p.Register(&collector{p: p}, &redactCollector{rs: p.redact})
	p.disc = newDiscoverer("/proc", p.cfg.TLS.RescanInterval, int(self))
	if len(p.cfg.PIDs) > 0 {
		p.disc.want = p.wantedPID
	}
	if p.cfg.TLS.OpenSSL {
		if err := p.startOpenSSL("/proc"); err != nil {
			_ = p.Close()
			p.Obj = nil
			return fmt.Errorf("%w (probes.l7.tls.openssl: false runs the probe without TLS plaintext)", err)
		}
	}
	if p.cfg.TLS.Go {
		if p.goTLS, err = newGoTLS(p, "/proc", int(self)); err != nil {
			_ = p.Close()
			p.Obj = nil
			return fmt.Errorf("%s: Go TLS probes: %w (probes.l7.tls.go: false runs the probe without them)", Name, err)
		}
		p.disc.OnProcess(p.goTLS.inspect)
	}
	p.disc.start()
	p.Register(p.disc.collectors()...)
	return nil
}

// Run implements probe.Probe: decode every record and publish it while
// something consumes conn_data.
func (p *Probe) Run(ctx context.Context) error {
	// The discovery attaches to files found while running: it ends
	// before Run returns, so Close never races it.
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.disc.run(ctx) }()
	defer func() { cancel(); <-done }()
	return p.ReadRing(ctx, p.handle)
}

func (p *Probe) handle(b []byte) error {
	r, err := decodeRecord(b, p.redact)
	if err != nil {
		return err
	}
	if p.Env.Bus == nil || !p.Env.Bus.Wants(KindConnData) {
		return nil
	}
	p.Env.Bus.Publish(p.toEvent(&r))
	return nil
}

func (p *Probe) toEvent(r *record) *ConnData {
	var cached proc.Process
	if p.Env.Procs != nil {
		cached = p.Env.Procs.Lookup(r.proc.PID, r.proc.CgroupID)
	}
	e := r.event
	e.Header = p.Header(KindConnData, r.tsNS, r.proc, cached)
	return &e
}

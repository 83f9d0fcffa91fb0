// Package tcp is the TCP and network probe: connection lifecycle (connect,
// failed connect, accept, close with the socket's counters), RTT,
// retransmits and resets, and traffic per interface and per cgroup, all from
// tracepoints (sock:inet_sock_set_state, tcp:tcp_probe,
// tcp:tcp_retransmit_skb, tcp:tcp_send_reset, tcp:tcp_receive_reset,
// net:net_dev_xmit, net:netif_receive_skb) plus cgroup_skb.
package tcp

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/metrics"
	"github.com/vigilproject/vigil/internal/probe"
	"github.com/vigilproject/vigil/internal/proc"
)

// Name is the probe's name in config, metrics and `vigil features`.
const Name = "tcp"

// Config tunes the probe (probes.tcp in the config file).
type Config struct {
	Enabled     bool   `yaml:"enabled"`
	RingbufSize uint32 `yaml:"ringbuf_size"` // bytes: a power of two, at least 4096
	// MaxSockets bounds the socket table (LRU): connections being opened
	// or open, with their owner. Evictions are counted.
	MaxSockets uint32 `yaml:"max_sockets"`
	// MaxListeners bounds the table of listening sockets' owners (LRU).
	MaxListeners uint32 `yaml:"max_listeners"`
	// MaxAggregates bounds the (owner, remote address) keys of the
	// in-kernel RTT, retransmit and reset aggregates (LRU).
	MaxAggregates uint32 `yaml:"max_aggregates"`
	// RTTSampleEvery records one tcp_probe hit in N per CPU into the RTT
	// histograms and live per-socket counters; 0 does not attach tcp_probe.
	RTTSampleEvery uint32 `yaml:"rtt_sample_every"`
	// InterfaceTraffic counts bytes and packets per network interface
	// (net:net_dev_xmit, net:netif_receive_skb).
	InterfaceTraffic bool `yaml:"interface_traffic"`
	// CgroupTraffic counts IP bytes and packets per cgroup (container,
	// systemd unit) with cgroup_skb programs on the cgroup v2 root.
	CgroupTraffic bool `yaml:"cgroup_traffic"`
	// CgroupRoot is the cgroup v2 mount the cgroup_skb programs attach to;
	// empty finds it (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid
	// hierarchies).
	CgroupRoot string `yaml:"cgroup_root"`
}

// DefaultConfig is the embedded default.
func DefaultConfig() *Config {
	return &Config{
		Enabled: true, RingbufSize: 1 << 20, MaxSockets: 65536, MaxListeners: 4096, MaxAggregates: 4096,
		RTTSampleEvery: 8, InterfaceTraffic: false, CgroupTraffic: false,
	}
}

// IsEnabled implements probe.Config.
func (c *Config) IsEnabled() bool { return c.Enabled }

// Validate implements probe.Config.
func (c *Config) Validate() error {
	if err := probe.ValidateRingSize(c.RingbufSize); err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		v    uint32
	}{{"max_sockets", c.MaxSockets}, {"max_listeners", c.MaxListeners}, {"max_aggregates", c.MaxAggregates}} {
		if b.v < 16 || b.v > 1<<22 {
			return fmt.Errorf("%s: %d must be between 16 and 4194304", b.name, b.v)
		}
	}
	if c.RTTSampleEvery > 1<<20 {
		return fmt.Errorf("rtt_sample_every: %d is more than 1048576", c.RTTSampleEvery)
	}
	return nil
}

// defaultsYAML is this probe's commented section of `vigil config default`.
//
//go:embed defaults.yaml
var defaultsYAML []byte

func init() {
	probe.Register(probe.Spec{
		Name:           Name,
		DefaultYAML:    defaultsYAML,
		Help:           "TCP lifecycle (connect latency, failures with errno, accept, close with bytes/RTT/retransmits), RTT histograms, retransmits, resets, traffic per interface and cgroup",
		DefaultEnabled: true,
		Events:         kinds,
		NewConfig:      func() probe.Config { return DefaultConfig() },
		New:            func(c probe.Config) (probe.Probe, error) { return New(c.(*Config)), nil },
	})
}

// tp builds a logical program over a tracepoint with its tp_btf, raw_tp
// and (when classic is set) classic-tracepoint variants.
func tp(name, group, short string, required, classic bool) kernel.ProgramDef {
	d := kernel.ProgramDef{Name: name, Required: required, Hooks: []kernel.Hook{
		{Kind: kernel.TpBTF, Program: "tp_btf_" + short, Target: name},
		{Kind: kernel.RawTP, Program: "raw_tp_" + short, Target: name},
	}}
	if classic {
		d.Hooks = append(d.Hooks, kernel.Hook{Kind: kernel.Tracepoint, Program: "tp_" + short, Target: group + "/" + name})
	}
	return d
}

// Programs lists the logical programs with their hook candidates.
func Programs(cfg *Config) []kernel.ProgramDef {
	defs := []kernel.ProgramDef{
		tp("inet_sock_set_state", "sock", "set_state", true, true),
		tp("inet_sk_error_report", "sock", "error_report", false, false),
		{Name: "sys_enter_connect", Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_enter_connect", Target: "syscalls/sys_enter_connect"}}},
		{Name: "sys_exit_connect", Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_exit_connect", Target: "syscalls/sys_exit_connect"}}},
		{Name: "sys_enter_getsockopt", Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_enter_getsockopt", Target: "syscalls/sys_enter_getsockopt"}}},
		{Name: "sys_exit_getsockopt", Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_exit_getsockopt", Target: "syscalls/sys_exit_getsockopt"}}},
		{Name: "sys_exit_accept4", Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_exit_accept4", Target: "syscalls/sys_exit_accept4"}}},
		{Name: "sys_exit_accept", Hooks: []kernel.Hook{{Kind: kernel.Tracepoint, Program: "tp_exit_accept", Target: "syscalls/sys_exit_accept"}}},
		retransmitDef(),
		tp("tcp_send_reset", "tcp", "send_reset", false, true),
		tp("tcp_receive_reset", "tcp", "receive_reset", false, true),
	}
	if cfg.RTTSampleEvery > 0 {
		// The classic tcp_probe record moved its fields across kernels
		// (family, sock_cookie, skaddr were added later): no classic variant.
		defs = append(defs, tp("tcp_probe", "tcp", "probe", false, false))
	}
	if cfg.InterfaceTraffic {
		defs = append(defs, tp("net_dev_xmit", "net", "xmit", false, false), tp("netif_receive_skb", "net", "receive", false, false))
	}
	return defs
}

// Probe is the running TCP probe.
type Probe struct {
	probe.Base
	cfg     *Config
	maps    tcpMaps // the object's maps, by the names tcp.bpf.c gives them
	cgroups *proc.Cgroups

	opened      *prometheus.CounterVec
	failed      *prometheus.CounterVec
	closed      *prometheus.CounterVec
	connLatency *prometheus.HistogramVec
	duration    *prometheus.HistogramVec
	ctrCap      *metrics.LabelCap
	commCap     *metrics.LabelCap
	agg         *aggCollector
}

// New returns an unstarted probe.
func New(cfg *Config) *Probe { return &Probe{Base: probe.Base{Name: Name}, cfg: cfg} }

// Config returns the probe's configuration.
func (p *Probe) Config() *Config { return p.cfg }

// Start implements probe.Probe.
func (p *Probe) Start(env *probe.Env) error {
	spec, err := loadTcp()
	if err != nil {
		return fmt.Errorf("%s: reading embedded BPF object: %w", Name, err)
	}
	every := p.cfg.RTTSampleEvery
	if every == 0 {
		every = 1
	}
	defs := Programs(p.cfg)
	var cgErr error
	if p.cfg.CgroupTraffic {
		defs, cgErr = appendCgroupDefs(defs, p.cfg.CgroupRoot)
	}
	if err := p.Load(env, spec, kernel.LoadOptions{
		Programs:  defs,
		Constants: map[string]any{"rtt_sample_every": every},
		MapSizes: map[string]uint32{
			"events": p.cfg.RingbufSize, "socks": p.cfg.MaxSockets,
			"listeners": p.cfg.MaxListeners, "agg": p.cfg.MaxAggregates,
		},
	}); err != nil {
		return err
	}
	if err := p.Obj.Assign(&p.maps); err != nil {
		_ = p.Close()
		return err
	}
	p.cgroups = env.CgroupResolver("/sys/fs/cgroup")
	if p.cfg.CgroupTraffic {
		for _, st := range p.Obj.Skipped {
			if st.Name == "cgroup_ingress" || st.Name == "cgroup_egress" {
				cgErr = errors.Join(cgErr, errors.New(strings.Join(st.Tried, "; ")))
			}
		}
		if cgErr != nil {
			env.Log.Warn("per-cgroup traffic unavailable", "err", cgErr)
		}
	}
	p.registerMetrics(env)
	return nil
}

// appendCgroupDefs adds the optional cgroup_skb programs, attached to the
// cgroup v2 root, which covers every cgroup below it.
func appendCgroupDefs(defs []kernel.ProgramDef, configuredRoot string) ([]kernel.ProgramDef, error) {
	root, err := kernel.Cgroup2Root(configuredRoot)
	if err != nil {
		return defs, err
	}
	for _, prog := range []string{"cgroup_ingress", "cgroup_egress"} {
		defs = append(defs, kernel.ProgramDef{Name: prog, Hooks: []kernel.Hook{{Kind: kernel.CgroupSKB, Program: prog, Target: root}}})
	}
	return defs, nil
}

// cgroupAttached reports whether a cgroup_skb program counts traffic.
func (p *Probe) cgroupAttached() bool {
	for _, prog := range p.Obj.Programs {
		if prog.Hook == kernel.CgroupSKB {
			return true
		}
	}
	return false
}

func (p *Probe) registerMetrics(env *probe.Env) {
	limit := env.LabelLimit
	p.ctrCap = metrics.NewLabelCap("vigil_tcp_connections", "container", limit)
	p.commCap = metrics.NewLabelCap("vigil_tcp_connections", "comm", limit)
	p.opened = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_tcp_connections_opened_total",
		Help: "TCP connections established: outbound (connect) and inbound (accept), by process name and container (capped).",
	}, []string{"direction", "comm", "container"})
	p.failed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_tcp_connect_failures_total",
		Help: "Outbound TCP connects that never became established, by errno name (\"closed\": the application gave up first).",
	}, []string{"errno", "comm", "container"})
	p.closed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_tcp_connections_closed_total",
		Help: "Established TCP connections that closed.",
	}, []string{"direction", "comm", "container"})
	p.connLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vigil_tcp_connect_duration_seconds",
		Help:    "Time from connect() to ESTABLISHED for outbound TCP connections.",
		Buckets: prometheus.ExponentialBuckets(25e-6, 2, 18), // 25µs .. ~3.3s
	}, []string{"container"})
	p.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vigil_tcp_connection_lifetime_seconds",
		Help:    "Lifetime of TCP connections from establishment to close.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 12), // 1 ms .. ~70 min
	}, []string{"direction"})
	p.agg = newAggCollector(p, limit)
	p.Register(p.opened, p.failed, p.closed, p.connLatency, p.duration, p.agg)
}

// Run implements probe.Probe.
func (p *Probe) Run(ctx context.Context) error {
	return p.ReadRing(ctx, p.handle)
}

func (p *Probe) handle(b []byte) error {
	r, err := decodeEvent(b)
	if err != nil {
		return err
	}
	kp := probe.ToKernelProc(&r.Proc)
	comm := kp.Command()
	pr := p.process(kp)
	ctr := p.ctrCap.Value(pr.Container.Short())
	commL := p.commCap.Value(comm)
	dir := "outbound"
	if r.Flags&flagPassive != 0 {
		dir = "inbound"
	}
	switch r.Kind {
	case kindConnect:
		lat := since(r.EstNs, r.StartNs)
		p.opened.WithLabelValues("outbound", commL, ctr).Inc()
		p.connLatency.WithLabelValues(ctr).Observe(float64(lat) / 1e9)
		if p.Env.Bus.Wants(event.KindConnect) {
			e := &event.TCPConnect{Header: p.header(event.KindConnect, &r, kp, pr), TCPConn: connOf(&r, dir), LatencyMS: nsToMS(lat)}
			p.Env.Bus.Publish(e)
		}
	case kindConnectFailed:
		name := errnoName(r.Err)
		p.failed.WithLabelValues(name, commL, ctr).Inc()
		if p.Env.Bus.Wants(event.KindConnect) {
			e := &event.TCPConnect{Header: p.header(event.KindConnect, &r, kp, pr), TCPConn: connOf(&r, dir),
				LatencyMS: nsToMS(since(r.TsNs, r.StartNs)), Error: name, Errno: int(r.Err)}
			p.Env.Bus.Publish(e)
		}
	case kindAccept:
		p.opened.WithLabelValues("inbound", commL, ctr).Inc()
		if p.Env.Bus.Wants(event.KindAccept) {
			e := &event.TCPAccept{Header: p.header(event.KindAccept, &r, kp, pr), TCPConn: connOf(&r, dir), QueuedMS: nsToMS(since(r.TsNs, r.EstNs))}
			p.Env.Bus.Publish(e)
		}
	case kindClose:
		dur := since(r.TsNs, r.EstNs)
		sent, received := payload(&r)
		p.closed.WithLabelValues(dir, commL, ctr).Inc()
		p.duration.WithLabelValues(dir).Observe(float64(dur) / 1e9)
		if p.Env.Bus.Wants(event.KindClose) {
			e := &event.TCPClose{Header: p.header(event.KindClose, &r, kp, pr), TCPConn: connOf(&r, dir),
				BytesSent: sent, BytesReceived: received, BytesRetrans: r.BytesRetrans,
				SegsIn: r.SegsIn, SegsOut: r.SegsOut, Retransmits: r.TotalRetrans,
				SRTTUS: r.SrttUs, RTTVarUS: r.MdevUs, DurationMS: nsToMS(dur),
				State: stateName(r.State), Owner: owner(r.Flags)}
			p.Env.Bus.Publish(e)
		}
	}
	return nil
}

// connOf formats the connection's endpoints, only for events someone reads:
// the address strings are the costly part of a record.
func connOf(r *tcpTcpEvent, dir string) event.TCPConn {
	return event.TCPConn{
		Family: familyName(uint16(r.Family)),
		SAddr:  addr(uint16(r.Family), r.Saddr).String(), SPort: r.Sport,
		DAddr: addr(uint16(r.Family), r.Daddr).String(), DPort: r.Dport,
		Direction: dir, NetNS: r.Netns,
	}
}

func owner(flags uint32) string {
	switch {
	case flags&flagAccepted != 0:
		return "accept"
	case flags&flagFromListener != 0:
		return "listener"
	case flags&flagActive != 0:
		return "connect"
	}
	return "unknown"
}

// process resolves the record's owner through the process cache for what
// only the cache knows (exe, container); KernelProc.Process keeps a cached
// entry only if it is the same process (pid and start time).
func (p *Probe) process(k probe.KernelProc) proc.Process {
	if k.PID == 0 {
		return proc.Process{CgroupID: k.CgroupID, Container: p.cgroups.Container(k.CgroupID)}
	}
	pr := p.Env.Procs.Lookup(k.PID, k.CgroupID)
	if pr.StartNS != 0 && k.StartNS != 0 && pr.StartNS != k.StartNS {
		pr = proc.Process{PID: k.PID, StartNS: k.StartNS, CgroupID: k.CgroupID, Container: p.cgroups.Container(k.CgroupID)}
	}
	return pr
}

// header is the event header: the owner's context as the kernel saw it when
// it connected, listened or accepted, completed from the cache entry pr.
func (p *Probe) header(kind event.Kind, r *tcpTcpEvent, k probe.KernelProc, pr proc.Process) event.Header {
	return p.Header(kind, r.TsNs, k, pr)
}

// cgroupLabel names a cgroup for the traffic metric: the short container
// id, else the cgroup path (systemd unit or slice).
func (p *Probe) cgroupLabel(id uint64) string {
	if c := p.cgroups.Container(id); c.ID != "" {
		return c.Short()
	}
	if path, ok := p.cgroups.Path(id); ok && path != "" {
		return path
	}
	return "unknown"
}

// retransmitDef prefers the variants that read the err argument added in
// Linux 6.12 (they fail to load where the tracepoint has two arguments).
func retransmitDef() kernel.ProgramDef {
	d := tp("tcp_retransmit_skb", "tcp", "retransmit", false, true)
	d.Hooks = append([]kernel.Hook{
		{Kind: kernel.TpBTF, Program: "tp_btf_retransmit_err", Target: "tcp_retransmit_skb"},
		{Kind: kernel.RawTP, Program: "raw_tp_retransmit_err", Target: "tcp_retransmit_skb"},
	}, d.Hooks...)
	return d
}

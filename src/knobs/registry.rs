//! The entries of the knob registry, in the order `check` reports them.

use super::{Compare, Knob, KnobId, Limit, MeminfoField, Persist, Read, Scope, Shape, Write};

/// Shorthand for the common case: a sysctl read and written through /proc/sys and persisted in sysctl.d.
// One argument per column of the entry, called only in the table below.
#[allow(clippy::too_many_arguments)]
const fn sysctl(
    id: KnobId,
    name: &'static str,
    scope: Scope,
    shape: Shape,
    unit: &'static str,
    compare: Compare,
    summary: &'static str,
    symptom: &'static str,
) -> Knob {
    Knob {
        id,
        name,
        scope,
        shape,
        unit,
        read: Read::Sysctl(name),
        write: Write::Sysctl(name),
        persist: Persist::SysctlD,
        compare,
        summary,
        symptom,
        accepts: None,
    }
}

/// A value the kernel reports but nobody sets: usage counters (read like a sysctl, never written).
const fn counter(
    id: KnobId,
    name: &'static str,
    scope: Scope,
    shape: Shape,
    unit: &'static str,
    summary: &'static str,
    symptom: &'static str,
) -> Knob {
    Knob {
        write: Write::No("a usage counter: it follows from the other knobs and cannot be set"),
        persist: Persist::No,
        ..sysctl(
            id,
            name,
            scope,
            shape,
            unit,
            Compare::Info,
            summary,
            symptom,
        )
    }
}

/// Every knob, in the order `check` reports them; `REGISTRY[id as usize].id == id` for every id.
pub static REGISTRY: &[Knob] = &ENTRIES;

// Each entry sits at the index of its id, so `KnobId::knob` is an index (a compile error otherwise).
const _: () = {
    let mut i = 0;
    while i < ENTRIES.len() {
        assert!(
            ENTRIES[i].id as usize == i,
            "registry entry out of KnobId order"
        );
        i += 1;
    }
};

pub(super) const ENTRIES: [Knob; KnobId::COUNT] = [
    // --- the file descriptor chain: RLIMIT_NOFILE <= fs.nr_open, sum of all fds <= fs.file-max
    Knob {
        id: KnobId::NofileSoft,
        name: "rlimit.nofile.soft",
        scope: Scope::Process,
        shape: Shape::Int,
        unit: "fds",
        read: Read::Nofile(Limit::Soft),
        write: Write::Prlimit(Limit::Soft),
        persist: Persist::Nofile(Limit::Soft),
        compare: Compare::AtLeast,
        summary: "RLIMIT_NOFILE soft limit: the most file descriptors the process may have open now; \
                  every socket is one. A process may raise it up to the hard limit by itself.",
        symptom: "accept(2) or socket(2) fails with EMFILE (\"Too many open files\"); \
                  a server's accept loop spins or logs and new clients time out.",
        // setrlimit(2) refuses more than fs.nr_open, whose own ceiling is 2,147,483,584.
        accepts: Some((0, 2_147_483_584)),
    },
    Knob {
        id: KnobId::NofileHard,
        name: "rlimit.nofile.hard",
        scope: Scope::Process,
        shape: Shape::Int,
        unit: "fds",
        read: Read::Nofile(Limit::Hard),
        write: Write::Prlimit(Limit::Hard),
        persist: Persist::Nofile(Limit::Hard),
        compare: Compare::AtLeast,
        summary: "RLIMIT_NOFILE hard limit: the ceiling for the soft limit. Raising it needs \
                  CAP_SYS_RESOURCE and can never exceed fs.nr_open.",
        symptom: "setrlimit(2) fails with EPERM when raising the soft limit past it; \
                  then EMFILE as for the soft limit. Set by LimitNOFILE= in a systemd unit, \
                  limits.d for login sessions, or the container runtime.",
        // setrlimit(2) refuses more than fs.nr_open, whose own ceiling is 2,147,483,584.
        accepts: Some((0, 2_147_483_584)),
    },
    sysctl(
        KnobId::NrOpen,
        "fs.nr_open",
        Scope::Host,
        Shape::Int,
        "fds",
        Compare::AtLeast,
        "The largest RLIMIT_NOFILE any process may be given (default 1048576).",
        "setrlimit(2) or prlimit fails with EPERM for a limit above it, even as root; \
         systemd refuses LimitNOFILE= above it.",
    )
    // fs/file.c: sysctl_nr_open_min = BITS_PER_LONG, sysctl_nr_open_max = min(INT_MAX, ...) & -BITS_PER_LONG.
    .accepting(64, 2_147_483_584),
    sysctl(
        KnobId::FileMax,
        "fs.file-max",
        Scope::Host,
        Shape::Int,
        "fds",
        Compare::AtLeast,
        "The most open files the whole kernel allocates (fs.file-nr shows the use). \
         Processes with CAP_SYS_ADMIN are not held to it.",
        "open(2), socket(2), accept(2) fail with ENFILE (\"Too many open files in system\"); \
         the kernel logs \"VFS: file-max limit N reached\".",
    )
    // proc_doulongvec_minmax with extra2 = LONG_MAX.
    .accepting(0, 9_223_372_036_854_775_807),
    counter(
        KnobId::FileNr,
        "fs.file-nr",
        Scope::Host,
        Shape::Triple,
        "fds",
        "Open files in use on the host: allocated, free (always 0), maximum (fs.file-max).",
        "When the first number reaches the third, ENFILE.",
    ),
    // --- connection tracking
    sysctl(
        KnobId::ConntrackMax,
        "net.netfilter.nf_conntrack_max",
        Scope::Host,
        Shape::Int,
        "entries",
        Compare::AtLeast,
        "The most connections netfilter tracks at once; one entry per flow while conntrack is in use. \
         Writable only in the initial network namespace.",
        "new connections are dropped silently (SYNs vanish, clients time out) and the kernel logs \
         \"nf_conntrack: table full, dropping packet\"; conntrack -S counts insert_failed and drop.",
    )
    // proc_dointvec(_minmax): the value is a C int, so at most INT_MAX (EINVAL above).
    .accepting(0, 2_147_483_647),
    Knob {
        id: KnobId::ConntrackBuckets,
        name: "net.netfilter.nf_conntrack_buckets",
        scope: Scope::Host,
        shape: Shape::Int,
        unit: "buckets",
        read: Read::Sysctl("net.netfilter.nf_conntrack_buckets"),
        write: Write::ModuleParam { module: "nf_conntrack", param: "hashsize" },
        persist: Persist::ModprobeD { module: "nf_conntrack", param: "hashsize" },
        compare: Compare::AtLeast,
        summary: "Size of the conntrack hash table (the nf_conntrack module's hashsize). \
                  Too few buckets for nf_conntrack_max makes every packet walk long chains.",
        symptom: "no error: softirq CPU climbs and packet rate falls as the table fills.",
        accepts: None,
    },
    counter(
        KnobId::ConntrackCount,
        "net.netfilter.nf_conntrack_count",
        Scope::NetNs,
        Shape::Int,
        "entries",
        "Connections conntrack tracks now in this network namespace (0 when no rule hooks conntrack).",
        "When it reaches nf_conntrack_max, packets of new connections are dropped.",
    ),
    // --- TCP memory: host-wide pages, per-socket buffers
    sysctl(
        KnobId::TcpMem,
        "net.ipv4.tcp_mem",
        Scope::Host,
        Shape::Triple,
        "pages",
        Compare::AtLeast,
        "Pages all TCP sockets together may use for buffers: below the first no pressure, \
         above the second memory pressure (buffers shrink), the third a hard cap.",
        "TCPMemoryPressures in /proc/net/netstat climbs; past the cap TCPAbortOnMemory counts \
         connections reset, and the kernel logs \"TCP: out of memory -- consider tuning tcp_mem\".",
    ),
    sysctl(
        KnobId::TcpRmem,
        "net.ipv4.tcp_rmem",
        Scope::NetNs,
        Shape::Triple,
        "bytes",
        Compare::Info,
        "Per-socket receive buffer: min, default, max (autotuning grows towards max). \
         Smaller defaults cut memory per busy connection; idle sockets hold none.",
        "no error of its own: large values let busy sockets eat tcp_mem; tiny ones cut throughput.",
    )
    // proc_dointvec_minmax with extra1 = 1: each of the three is an int of at least 1.
    .accepting(1, 2_147_483_647),
    sysctl(
        KnobId::TcpWmem,
        "net.ipv4.tcp_wmem",
        Scope::NetNs,
        Shape::Triple,
        "bytes",
        Compare::Info,
        "Per-socket send buffer: min, default, max.",
        "no error of its own: as tcp_rmem, for unsent data.",
    )
    // proc_dointvec_minmax with extra1 = 1: each of the three is an int of at least 1.
    .accepting(1, 2_147_483_647),
    // --- accept queues
    sysctl(
        KnobId::Somaxconn,
        "net.core.somaxconn",
        Scope::NetNs,
        Shape::Int,
        "connections",
        Compare::AtLeast,
        "Ceiling on a listener's accept queue (the backlog passed to listen(2) is cut to it).",
        "under a burst of connects the queue overflows: ListenOverflows and ListenDrops rise in \
         /proc/net/netstat, clients see SYNs retransmitted (1 s, 3 s, 7 s connect delays) or resets.",
    )
    // proc_dointvec(_minmax): the value is a C int, so at most INT_MAX (EINVAL above, measured on Linux 6.18).
    .accepting(0, 2_147_483_647),
    sysctl(
        KnobId::TcpMaxSynBacklog,
        "net.ipv4.tcp_max_syn_backlog",
        Scope::NetNs,
        Shape::Int,
        "connections",
        Compare::AtLeast,
        "Most half-open connections (SYN received, not yet ACKed) remembered per listener.",
        "SYNs dropped under a connect burst (TcpExtListenDrops), or SYN cookies sent \
         (\"Possible SYN flooding on port\" in the kernel log).",
    )
    // proc_dointvec(_minmax): the value is a C int, so at most INT_MAX (EINVAL above, measured on Linux 6.18).
    .accepting(0, 2_147_483_647),
    sysctl(
        KnobId::TcpSyncookies,
        "net.ipv4.tcp_syncookies",
        Scope::NetNs,
        Shape::Int,
        "mode",
        Compare::AtLeast,
        "SYN cookies: 1 answers a SYN with a cookie when the listener's SYN queue is full, 2 always, 0 never.",
        "with 0, a full SYN queue (three quarters of tcp_max_syn_backlog) drops SYNs: clients \
         retransmit after 1 s, 3 s, 7 s and ListenDrops rises; with 1 the handshake completes \
         on a cookie instead.",
    )
    .accepting(0, 2),
    sysctl(
        KnobId::NetdevMaxBacklog,
        "net.core.netdev_max_backlog",
        Scope::Host,
        Shape::Int,
        "packets",
        Compare::AtLeast,
        "Packets queued per CPU before the stack processes them; loopback traffic goes through it.",
        "the second column of /proc/net/softnet_stat (dropped) grows; connects and closes stall \
         on retransmits during bursts such as a mass close.",
    )
    // proc_dointvec(_minmax): the value is a C int, so at most INT_MAX (EINVAL above).
    .accepting(0, 2_147_483_647),
    // --- ports: the client side and loopback
    sysctl(
        KnobId::IpLocalPortRange,
        "net.ipv4.ip_local_port_range",
        Scope::NetNs,
        Shape::Range,
        "ports",
        Compare::PortCount,
        "Ephemeral ports for outgoing connections: one per connection per (source address, destination) pair.",
        "connect(2) or bind(2) fails with EADDRNOTAVAIL (\"Cannot assign requested address\") once \
         the range is used up for a destination; add source addresses or widen the range.",
    )
    // Ports are 16-bit; port 0 means "any" and is never handed out.
    .accepting(1, 65535),
    sysctl(
        KnobId::TcpTwReuse,
        "net.ipv4.tcp_tw_reuse",
        Scope::NetNs,
        Shape::Int,
        "mode",
        Compare::Equal,
        "Reuse of TIME_WAIT ports for new outgoing connections: 0 off, 1 on, 2 loopback only (default).",
        "after many short connections a client runs out of ports (EADDRNOTAVAIL) while sockets sit in TIME_WAIT.",
    )
    // proc_dointvec_minmax with extra1 = 0, extra2 = 2.
    .accepting(0, 2),
    sysctl(
        KnobId::TcpFinTimeout,
        "net.ipv4.tcp_fin_timeout",
        Scope::NetNs,
        Shape::Int,
        "seconds",
        Compare::AtMost,
        "How long an orphaned connection stays in FIN_WAIT_2 before the kernel drops it.",
        "after a mass close, FIN_WAIT_2 sockets and their memory linger for this long.",
    )
    // proc_dointvec_jiffies: seconds x HZ must fit an int, so at most INT_MAX / HZ; 2,147,483 holds
    // for every HZ up to 1000 (measured: 8,589,934 is the ceiling at HZ=250 on Linux 6.18).
    .accepting(0, 2_147_483),
    sysctl(
        KnobId::TcpMaxTwBuckets,
        "net.ipv4.tcp_max_tw_buckets",
        Scope::NetNs,
        Shape::Int,
        "sockets",
        Compare::AtLeast,
        "Most sockets held in TIME_WAIT; past it they are destroyed at once.",
        "TCPTimeWaitOverflow climbs and the kernel logs \"TCP: time wait bucket table overflow\"; \
         harmless for the closer but late segments may then reset new connections.",
    )
    // proc_dointvec(_minmax): the value is a C int, so at most INT_MAX (EINVAL above, measured on Linux 6.18).
    .accepting(0, 2_147_483_647),
    sysctl(
        KnobId::TcpMaxOrphans,
        "net.ipv4.tcp_max_orphans",
        Scope::Host,
        Shape::Int,
        "sockets",
        Compare::AtLeast,
        "Most TCP sockets not attached to any process (closed by the application, still closing).",
        "a mass close resets connections instead of closing them gracefully: TCPAbortOnMemory, \
         \"too many orphaned sockets\" in the kernel log.",
    )
    // proc_dointvec(_minmax): the value is a C int, so at most INT_MAX (EINVAL above).
    .accepting(0, 2_147_483_647),
    // --- memory
    Knob {
        id: KnobId::MemoryTotal,
        name: "memory.total",
        scope: Scope::Host,
        shape: Shape::Int,
        unit: "bytes",
        read: Read::Meminfo(MeminfoField::Total),
        write: Write::No("RAM cannot be changed by tune: add memory or spread connections over more hosts"),
        persist: Persist::No,
        compare: Compare::AtLeast,
        summary: "Physical memory. Each connection costs kernel memory (socket, inode, file, epoll entry: \
                  about 5 KB per socket) plus whatever the server keeps per connection.",
        symptom: "MemFree falls, the OOM killer picks the server, or TCP memory pressure resets connections.",
        accepts: None,
    },
    Knob {
        id: KnobId::MemoryFree,
        name: "memory.free",
        scope: Scope::Host,
        shape: Shape::Int,
        unit: "bytes",
        read: Read::Meminfo(MeminfoField::Free),
        write: Write::No("free memory follows from what runs on the host"),
        persist: Persist::No,
        compare: Compare::Info,
        summary: "Memory free now (MemFree), reported. tune plans with usable memory: MemAvailable less \
                  the reclaimable slab that new sockets add (MemAvailable counts socket inodes as \
                  reclaimable, but an open socket holds them); check, verify and its watchdog share \
                  that definition.",
        symptom: "as memory.total.",
        accepts: None,
    },
    Knob {
        id: KnobId::MemoryPerSocket,
        name: "memory.per-socket",
        scope: Scope::Host,
        shape: Shape::Int,
        unit: "bytes",
        read: Read::SocketCost,
        write: Write::No("a property of the kernel: fewer caches per socket need a different kernel or server design"),
        persist: Persist::No,
        compare: Compare::Info,
        summary: "Kernel memory one established TCP socket held in epoll costs: one object each in the TCP, \
                  sock_inode_cache, filp, dentry and eventpoll caches of /proc/slabinfo, plus 256 B of small \
                  allocations. When /proc/slabinfo is unreadable (not root) tune assumes 5120 B, measured on Linux 6.18.",
        symptom: "Slab in /proc/meminfo grows by this much per socket; a connection pair on one host costs twice.",
        accepts: None,
    },
];

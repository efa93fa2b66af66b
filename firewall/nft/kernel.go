package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/mamori-sec/mamori/firewall/policy"
)

// ErrUnavailable marks hosts where nftables cannot be used: no privileges
// or no nf_tables in the kernel.
var ErrUnavailable = errors.New("nftables unavailable")

// elemChunk bounds the elements per netlink message: the kernel caps one
// message, not one batch.
const elemChunk = 2048

// Conn talks to one network namespace's nftables.
type Conn struct {
	c     *nftables.Conn
	table *nftables.Table
	netns int
	rawc  *netlink.Conn
	// known is the generation right after our last commit and the plan
	// fingerprint it holds; see Gen.
	known    uint32
	knownFP  string
	knownSet bool
}

// Open connects to nftables in the current network namespace, or in the one
// netnsFD refers to when it is >= 0. It checks that nftables answers and
// returns an error wrapping ErrUnavailable when it does not.
func Open(netnsFD int) (*Conn, error) {
	// Big policies and block lists make big batches and many acks; the
	// default socket buffers would overflow (ENOBUFS).
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigBuffers)}
	if netnsFD >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFD))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, classify(fmt.Errorf("opening netlink: %w", err))
	}
	k := &Conn{c: c, table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}}
	if netnsFD >= 0 {
		k.netns = netnsFD
	}
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		c.CloseLasting()
		return nil, classify(fmt.Errorf("listing tables: %w", err))
	}
	return k, nil
}

// bigBuffers lifts the socket buffers past the sysctl caps (root may):
// a 10,000-rule policy or a 100,000-address block list is one large batch,
// sent in one sendmsg, with one ack per message coming back.
func bigBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 64<<20); e != nil {
				serr = e
			}
		}
	})
	if serr != nil {
		// Without CAP_NET_ADMIN the forced sizes fail; the plain ones
		// still help small batches.
		_ = c.SetWriteBuffer(4 << 20)
		_ = c.SetReadBuffer(4 << 20)
	}
	return err
}

func classify(err error) error {
	switch {
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w: no privilege for nftables (needs root or CAP_NET_ADMIN): %v", ErrUnavailable, err)
	case errors.Is(err, syscall.EPROTONOSUPPORT), errors.Is(err, syscall.EAFNOSUPPORT), errors.Is(err, syscall.EOPNOTSUPP):
		return fmt.Errorf("%w: kernel has no nf_tables support: %v", ErrUnavailable, err)
	}
	return err
}

// Close releases the netlink socket.
func (k *Conn) Close() error {
	if k.rawc != nil {
		k.rawc.Close()
	}
	return k.c.CloseLasting()
}

// Known records that the kernel held plan fingerprint fp at generation gen
// (from a previous process, via the caller's state file).
func (k *Conn) Known(fp string, gen uint32) { k.knownFP, k.known, k.knownSet = fp, gen, true }

// Mark returns the fingerprint and generation after our last commit.
func (k *Conn) Mark() (fp string, gen uint32, ok bool) { return k.knownFP, k.known, k.knownSet }

// Unchanged reports whether the kernel provably still holds plan fp: the
// ruleset generation has not moved since we committed it.
func (k *Conn) Unchanged(fp string) bool {
	if !k.knownSet || k.knownFP != fp {
		return false
	}
	g, err := k.Gen()
	return err == nil && g == k.known
}

// remember records the generation after a commit of ours that left plan
// fp in place. A commit by someone else in between would be missed until
// the next generation change, which the next full check then sees.
func (k *Conn) remember(fp string) {
	if g, err := k.Gen(); err == nil {
		k.known, k.knownFP, k.knownSet = g, fp, true
	} else {
		k.knownSet = false
	}
}

// Apply makes the mamori table match p in one atomic batch. It reads the
// current state first; when nothing differs it changes nothing (so counters
// and block sets keep running) and reports changed=false. Block sets keep
// their elements across a change.
func (k *Conn) Apply(p *Plan) (changed bool, err error) {
	if k.Unchanged(p.Fingerprint) {
		return false, nil
	}
	st, err := k.Read()
	if err != nil {
		return false, err
	}
	if len(st.Diff(p)) == 0 {
		k.remember(p.Fingerprint)
		return false, nil
	}
	if err := k.replace(st, p); err != nil {
		return false, err
	}
	k.remember(p.Fingerprint)
	return true, nil
}

func (k *Conn) replace(st *State, p *Plan) error {
	c := newBatchBuilder()
	if st.Exists {
		for name := range st.Chains {
			ch := &nftables.Chain{Name: name, Table: k.table}
			c.FlushChain(ch)
			c.DelChain(ch)
		}
		for name := range st.Sets {
			if name != SetBlock4 && name != SetBlock6 {
				c.DelSet(&nftables.Set{Name: name, Table: k.table})
			}
		}
	}
	c.AddTable(k.table)
	idx := &setIndex{ids: map[string]uint32{}}
	for i := range p.Sets {
		s := &p.Sets[i]
		if _, ok := st.Sets[s.Name]; ok && (s.Name == SetBlock4 || s.Name == SetBlock6) {
			continue
		}
		ns := k.kernelSet(s)
		if err := c.AddSet(ns, nil); err != nil {
			return fmt.Errorf("adding set %s: %w", s.Name, err)
		}
		idx.ids[s.Name] = ns.ID
		if err := sendElements(c.Conn, ns, setElements(s), false); err != nil {
			return err
		}
	}
	// Chains first, then their rules: rules are appended to their chain by
	// name, so only the order within a chain matters.
	var jobs []ruleJob
	for _, ch := range p.Chains {
		hook, pol := nftables.ChainHookInput, nftables.ChainPolicyDrop
		if ch.Out {
			hook = nftables.ChainHookOutput
		}
		if ch.Accept {
			pol = nftables.ChainPolicyAccept
		}
		kc := c.AddChain(&nftables.Chain{Name: ch.Name, Table: k.table, Type: nftables.ChainTypeFilter, Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &pol})
		for i := range ch.Rules {
			jobs = append(jobs, ruleJob{kc, &ch.Rules[i]})
		}
	}
	pieces, err := k.encodeRules(jobs, idx, p)
	if err != nil {
		return err
	}
	return k.sendBatch(c, pieces...)
}

type ruleJob struct {
	chain *nftables.Chain
	rule  *Rule
}

// encodeRules encodes the rules' netlink messages, in order. Encoding
// through google/nftables costs ~25 µs a rule; a 10,000-rule policy is
// split over the cores, each piece in its own recording builder, and the
// pieces go into the one batch in order — the kernel still sees a single
// transaction.
func (k *Conn) encodeRules(jobs []ruleJob, idx *setIndex, p *Plan) ([][]netlink.Message, error) {
	n := 1
	if len(jobs) >= 1024 {
		n = min(runtime.GOMAXPROCS(0), 8)
	}
	pieces := make([][]netlink.Message, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		part := jobs[i*len(jobs)/n : (i+1)*len(jobs)/n]
		wg.Go(func() {
			b := newBatchBuilder()
			for _, j := range part {
				b.AddRule(&nftables.Rule{Table: k.table, Chain: j.chain, Exprs: ruleExprs(j.rule, idx), UserData: userdata.AppendString(nil, userdata.TypeComment, p.Comment(j.rule))})
			}
			if err := b.Flush(); err != nil {
				errs[i] = fmt.Errorf("encoding rules: %w", err)
				return
			}
			if len(b.msgs) >= 2 {
				pieces[i] = b.msgs[1 : len(b.msgs)-1] // without its batch begin and end
			}
		})
	}
	wg.Wait()
	return pieces, errors.Join(errs...)
}

func (k *Conn) kernelSet(s *Set) *nftables.Set {
	ns := &nftables.Set{Table: k.table, Name: s.Name, Interval: s.Interval, HasTimeout: s.Timeout, Dynamic: s.Dynamic, Timeout: s.Default, Size: s.Size}
	switch s.Key {
	case KeyIPv4:
		ns.KeyType = nftables.TypeIPAddr
	case KeyIPv6:
		ns.KeyType = nftables.TypeIP6Addr
	case KeyPort:
		ns.KeyType = nftables.TypeInetService
	case KeyRecon4, KeyRecon6:
		addr := nftables.TypeIPAddr
		if s.Key == KeyRecon6 {
			addr = nftables.TypeIP6Addr
		}
		ns.KeyType, _ = nftables.ConcatSetType(addr, addr, nftables.TypeInetProto, nftables.TypeTCPFlag, nftables.TypeInetService)
		ns.Concatenation = true
	}
	return ns
}

// setElements encodes prefixes and port ranges as interval start/end
// pairs; an interval reaching the top of the key space has no end.
func setElements(s *Set) []nftables.SetElement {
	var out []nftables.SetElement
	for _, p := range s.Prefixes {
		out = append(out, prefixElements(p, 0)...)
	}
	for _, r := range s.Ranges {
		out = append(out, nftables.SetElement{Key: be16(r.Lo)})
		if r.Hi < 65535 {
			out = append(out, nftables.SetElement{Key: be16(r.Hi + 1), IntervalEnd: true})
		}
	}
	return out
}

func prefixElements(p netip.Prefix, ttl time.Duration) []nftables.SetElement {
	p = p.Masked()
	out := []nftables.SetElement{{Key: p.Addr().AsSlice(), Timeout: ttl}}
	if end, ok := prefixEnd(p); ok {
		out = append(out, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true}) // the kernel refuses a timeout on an end element
	}
	return out
}

// prefixEnd is the first address after p.
func prefixEnd(p netip.Prefix) (netip.Addr, bool) {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	next := last.Next()
	return next, next.IsValid()
}

func ruleExprs(r *Rule, idx *setIndex) []expr.Any {
	var out []expr.Any
	for _, m := range r.Matches {
		out = append(out, m.Exprs(idx)...)
	}
	if r.Recon != ReconNone {
		v6 := false
		for _, m := range r.Matches {
			if n, ok := m.(ExplicitNfProto); ok {
				v6 = n.V6
			}
		}
		// The key is built in consecutive 32-bit registers from 8 (NFT_REG32_00,
		// which the dynset names by its 16-byte alias 1),
		// each field padded to 4 bytes, as nft lays out a concatenation.
		set, alen := SetRecon4, uint32(4)
		saddr, daddr := uint32(12), uint32(16)
		if v6 {
			set, alen, saddr, daddr = SetRecon6, 16, 8, 24
		}
		reg := uint32(8)
		next := func(n uint32) uint32 { r := reg; reg += (n + 3) / 4; return r }
		out = append(out,
			&expr.Payload{DestRegister: next(alen), Base: expr.PayloadBaseNetworkHeader, Offset: saddr, Len: alen},
			&expr.Payload{DestRegister: next(alen), Base: expr.PayloadBaseNetworkHeader, Offset: daddr, Len: alen},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: next(1)})
		if r.Recon == ReconTCP {
			out = append(out, &expr.Payload{DestRegister: next(1), Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1})
		} else {
			out = append(out, &expr.Immediate{Register: next(1), Data: []byte{0}})
		}
		if r.Recon == ReconICMP {
			out = append(out, &expr.Immediate{Register: next(2), Data: []byte{0, 0}})
		} else {
			out = append(out, &expr.Payload{DestRegister: next(2), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		}
		out = append(out, &expr.Dynset{SrcRegKey: 1, SetName: set, SetID: idx.id(set), Operation: unix.NFT_DYNSET_OP_ADD})
	}
	if r.Log != nil {
		unit := map[string]expr.LimitTime{"second": expr.LimitTimeSecond, "minute": expr.LimitTimeMinute, "hour": expr.LimitTimeHour, "day": expr.LimitTimeDay}[r.Log.Rate.Unit]
		out = append(out,
			&expr.Limit{Type: expr.LimitTypePkts, Rate: r.Log.Rate.N, Unit: unit, Burst: 5},
			&expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(r.Log.Prefix)})
	}
	if r.Counter {
		out = append(out, &expr.Counter{})
	}
	switch r.Verdict {
	case "accept":
		out = append(out, &expr.Verdict{Kind: expr.VerdictAccept})
	case "drop":
		out = append(out, &expr.Verdict{Kind: expr.VerdictDrop})
	}
	return out
}

// Delete removes the mamori table, if present.
func (k *Conn) Delete() error {
	st, err := k.Read()
	if err != nil || !st.Exists {
		return err
	}
	k.c.DelTable(k.table)
	if err := k.c.Flush(); err != nil {
		return classify(fmt.Errorf("deleting table: %w", err))
	}
	return nil
}

// State is what the kernel holds in the mamori table.
type State struct {
	Exists bool
	Chains map[string]*ChainState
	Sets   map[string]*SetState
}

// ChainState is one chain as read back.
type ChainState struct {
	Out      bool
	Base     bool
	Accept   bool
	Comments []string
	Counters []RuleCounter
}

// RuleCounter is one rule's counter with its comment.
type RuleCounter struct {
	Comment        string
	Packets, Bytes uint64
}

// SetState is one set as read back; Elements is counted for policy sets
// only (block and recon sets change on their own).
type SetState struct {
	Elements int
}

// Read reads the mamori table.
func (k *Conn) Read() (*State, error) {
	st := &State{Chains: map[string]*ChainState{}, Sets: map[string]*SetState{}}
	tables, err := k.c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, classify(fmt.Errorf("listing tables: %w", err))
	}
	for _, t := range tables {
		if t.Name == TableName {
			st.Exists = true
		}
	}
	if !st.Exists {
		return st, nil
	}
	chains, err := k.c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	rules, err := k.dumpRules()
	if err != nil {
		return nil, err
	}
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		cs := &ChainState{Base: ch.Hooknum != nil, Out: ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookOutput, Accept: ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept}
		cs.Counters = rules[ch.Name]
		for _, rc := range cs.Counters {
			cs.Comments = append(cs.Comments, rc.Comment)
		}
		st.Chains[ch.Name] = cs
	}
	sets, err := k.c.GetSets(k.table)
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	for _, s := range sets {
		ss := &SetState{Elements: -1}
		if !strings.HasPrefix(s.Name, "block") && !strings.HasPrefix(s.Name, "recon") {
			els, err := k.c.GetSetElements(s)
			if err != nil {
				return nil, fmt.Errorf("listing set %s: %w", s.Name, err)
			}
			ss.Elements = len(els)
		}
		st.Sets[s.Name] = ss
	}
	return st, nil
}

// Diff lists how the kernel state differs from the plan, in words fit for
// a drift event; empty means identical.
func (st *State) Diff(p *Plan) []string {
	if !st.Exists {
		return []string{"table inet " + TableName + " is missing"}
	}
	var d []string
	want := map[string]bool{}
	for _, ch := range p.Chains {
		want[ch.Name] = true
		cs, ok := st.Chains[ch.Name]
		if !ok {
			d = append(d, "chain "+ch.Name+" is missing")
			continue
		}
		if !cs.Base || cs.Out != ch.Out || cs.Accept != ch.Accept {
			d = append(d, "chain "+ch.Name+": hook or default policy changed")
		}
		if len(cs.Comments) != len(ch.Rules) {
			d = append(d, fmt.Sprintf("chain %s: %d rules, want %d", ch.Name, len(cs.Comments), len(ch.Rules)))
		}
		for i := range min(len(cs.Comments), len(ch.Rules)) {
			if w := p.Comment(&ch.Rules[i]); cs.Comments[i] != w {
				d = append(d, fmt.Sprintf("chain %s: rule %d is %q, want %q", ch.Name, i+1, cs.Comments[i], w))
				break
			}
		}
	}
	for name := range st.Chains {
		if !want[name] {
			d = append(d, "chain "+name+" is not ours")
		}
	}
	wantSets := map[string]bool{}
	for i := range p.Sets {
		s := &p.Sets[i]
		wantSets[s.Name] = true
		ss, ok := st.Sets[s.Name]
		switch {
		case !ok:
			d = append(d, "set "+s.Name+" is missing")
		case ss.Elements >= 0 && ss.Elements != len(setElements(s)):
			d = append(d, fmt.Sprintf("set %s: %d elements, want %d", s.Name, ss.Elements, len(setElements(s))))
		}
	}
	for name := range st.Sets {
		if !wantSets[name] {
			d = append(d, "set "+name+" is not ours")
		}
	}
	return d
}

// ProtoName maps a protocol number from a recon element to a policy name.
func ProtoName(n byte) policy.Protocol {
	for p, v := range protoNums {
		if v == n {
			return p
		}
	}
	return policy.Protocol(fmt.Sprint(n))
}

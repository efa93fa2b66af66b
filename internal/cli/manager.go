package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/manager"
	"github.com/mamori-sec/mamori/manager/store"
	"github.com/mamori-sec/mamori/rulepack"
	"github.com/spf13/cobra"
)

// dataFiles are the data-directory files a backup carries besides the
// database: the CA and the rule-pack signing key.
var dataFiles = []string{"ca.crt", "ca.key", "rulepack.key"}

// managerFlags are the --data-dir and --db flags every manager subcommand
// that touches the manager's state shares.
type managerFlags struct {
	dataDir, db string
}

func (f *managerFlags) add(cmd *cobra.Command) {
	addDataDirFlag(cmd, &f.dataDir, "manager data directory (CA, keys, SQLite database)")
	cmd.Flags().StringVar(&f.db, "db", "", `database: "" for SQLite in the data directory, "sqlite:///path", or "postgres://user@host/db"`)
}

func addDataDirFlag(cmd *cobra.Command, p *string, usage string) {
	cmd.Flags().StringVar(p, "data-dir", "mamori-data", usage)
}

// withStore opens the store the flags name, runs fn on it and closes it.
// Every failure of an administrative subcommand exits with code 2.
func (f *managerFlags) withStore(ctx context.Context, fn func(*store.Store) error) error {
	st, err := store.Open(ctx, f.db, f.dataDir)
	if err != nil {
		return exit2(err)
	}
	defer st.Close()
	return exit2(fn(st))
}

// exit2 marks err as an error exit (code 2) unless it already carries a code.
func exit2(err error) error {
	var ee *ExitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: 2, Err: err}
}

func newManagerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "manager", Short: "run or administer the manager"}
	cmd.AddCommand(newManagerRunCmd(), newManagerBackupCmd(), newManagerRestoreCmd(), newManagerAPIKeyCmd(), newManagerTokenCmd(), newManagerRulePackCmd())
	return cmd
}

func newManagerRunCmd() *cobra.Command {
	var f managerFlags
	var listen string
	var hosts, trusted []string
	var noURLs bool
	var burst int
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "run",
		Short: "serve the manager API (agents over mTLS, automation with API keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if os.Getenv("GOGC") == "" {
				// Every agent holds a TLS connection and a goroutine: with
				// thousands of them each collection scans a large, mostly
				// static heap, and ingest's garbage triggered one every few
				// milliseconds. A 4x heap target cut the manager's CPU per
				// ingested event by a third (bench/manager, 10,000 agents).
				debug.SetGCPercent(400)
			}
			m, err := manager.New(ctx, manager.Config{DataDir: f.dataDir, DB: f.db, Listen: listen, Hostnames: hosts, TrustedRulePackKeys: trusted, DisableRulePackURLs: noURLs, Version: Version,
				NotifyBurst: burst, NotifyWindow: window}, slog.Default())
			if err != nil {
				return exit2(err)
			}
			key, created, err := m.BootstrapAdmin(ctx)
			if err != nil {
				return exit2(err)
			}
			if created {
				fmt.Fprintf(cmd.OutOrStdout(), "admin API key (shown once): %s\n", key)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "manager: %s (CA: %s)\n", m.URL(), filepath.Join(f.dataDir, "ca.crt"))
			return m.Run(ctx)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8443", "address to listen on (TLS)")
	cmd.Flags().StringSliceVar(&hosts, "hostname", nil, "extra DNS names or IPs for the server certificate")
	cmd.Flags().StringSliceVar(&trusted, "trusted-rulepack-key", nil, "extra ed25519 public key (base64) whose rule packs are accepted")
	cmd.Flags().BoolVar(&noURLs, "no-rulepack-urls", false, "refuse rule pack imports by URL (the manager would fetch what an API user names)")
	cmd.Flags().IntVar(&burst, "notify-burst", 10, "notifications per notifier and alert rule per --notify-window; the rest go out as one summary (-1: no cap)")
	cmd.Flags().DurationVar(&window, "notify-window", time.Minute, "notification throttle window")
	return cmd
}

func newManagerBackupCmd() *cobra.Command {
	var f managerFlags
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "write one consistent archive of the manager's state (safe while it runs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return f.withStore(ctx, func(st *store.Store) error {
				files := map[string][]byte{}
				for _, n := range dataFiles {
					b, err := os.ReadFile(filepath.Join(f.dataDir, n))
					if err == nil {
						files[n] = b
					} else if !os.IsNotExist(err) {
						return fmt.Errorf("reading %s: %w", n, err)
					}
				}
				if err := writeBackup(ctx, st, args[0], files); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s\n", args[0])
				return nil
			})
		},
	}
	f.add(cmd)
	return cmd
}

// writeBackup writes the archive to a temporary file, syncs it and renames
// it into place, so a failed backup never leaves a truncated FILE.
func writeBackup(ctx context.Context, st *store.Store, path string, files map[string][]byte) error {
	tmp := path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := st.Backup(ctx, out, files); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("backing up: %w", err)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func newManagerRestoreCmd() *cobra.Command {
	var f managerFlags
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "restore a backup into an empty database and data directory (manager stopped)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// Opened before the store, so a wrong path creates no database.
			in, err := os.Open(args[0])
			if err != nil {
				return exit2(err)
			}
			defer in.Close()
			return f.withStore(ctx, func(st *store.Store) error {
				files, err := st.Restore(ctx, in)
				if err != nil {
					return err
				}
				for name, b := range files {
					if filepath.Base(name) != name {
						return fmt.Errorf("restoring: bad file name %q in backup", name)
					}
					if err := os.WriteFile(filepath.Join(f.dataDir, name), b, 0o600); err != nil {
						return err
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "restored %s\n", args[0])
				return nil
			})
		},
	}
	f.add(cmd)
	return cmd
}

func newManagerAPIKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "manage API keys"}
	var f managerFlags
	var name, tenant string
	var admin bool
	create := &cobra.Command{
		Use:   "create",
		Short: "create an API key and print it (only a hash is stored)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return f.withStore(ctx, func(st *store.Store) error {
				t, err := manager.EnsureTenant(ctx, st, tenant, nil)
				if err != nil {
					return err
				}
				k, err := st.CreateAPIKey(ctx, t.ID, name, admin)
				if err != nil {
					return err
				}
				_ = st.Audit(ctx, api.AuditEntry{TenantID: t.ID, Actor: "cli", Action: "apikey.create", ObjectType: "apikey", ObjectID: k.ID})
				fmt.Fprintln(cmd.OutOrStdout(), k.Key)
				return nil
			})
		},
	}
	f.add(create)
	create.Flags().StringVar(&name, "name", "cli", "key name")
	create.Flags().StringVar(&tenant, "tenant", manager.DefaultTenant, "tenant name (created when missing)")
	create.Flags().BoolVar(&admin, "admin", false, "system admin key (may manage tenants)")
	cmd.AddCommand(create)
	return cmd
}

func newManagerTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "manage enrolment tokens"}
	var f managerFlags
	var tenant, policy, group string
	var tags []string
	var ttl time.Duration
	var uses int
	create := &cobra.Command{
		Use:   "create",
		Short: "create an enrolment token and print it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return f.withStore(ctx, func(st *store.Store) error {
				t, err := manager.EnsureTenant(ctx, st, tenant, nil)
				if err != nil {
					return err
				}
				if policy != "" {
					if p, err := st.PolicyByName(ctx, t.ID, policy); err == nil {
						policy = p.ID
					} else if _, err := st.Policy(ctx, t.ID, policy); err != nil {
						return fmt.Errorf("--policy %s: no such policy in tenant %s", policy, tenant)
					}
				}
				tok, err := st.CreateToken(ctx, t.ID, api.TokenRequest{PolicyID: policy, Group: group, Tags: tags, MaxUses: uses}, ttl)
				if err != nil {
					return err
				}
				_ = st.Audit(ctx, api.AuditEntry{TenantID: t.ID, Actor: "cli", Action: "token.create", ObjectType: "token", ObjectID: tok.ID})
				fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
				return nil
			})
		},
	}
	f.add(create)
	create.Flags().StringVar(&tenant, "tenant", manager.DefaultTenant, "tenant name (created when missing)")
	create.Flags().StringVar(&policy, "policy", "", "policy name or ID for enrolled computers (default: the tenant's default policy)")
	create.Flags().StringVar(&group, "group", "", "group of enrolled computers")
	create.Flags().StringSliceVar(&tags, "tag", nil, "tag of enrolled computers (repeatable)")
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	create.Flags().IntVar(&uses, "max-uses", 1, "how many agents may enrol with it")
	cmd.AddCommand(create)
	return cmd
}

func newManagerRulePackCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rulepack", Short: "build signed rule packs"}
	var name, version, desc, out, keyFile, dataDir string
	build := &cobra.Command{
		Use:   "build DIR",
		Short: "sign a directory of rules as a pack: DIR/<module>/<files…>",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				keyFile = filepath.Join(dataDir, "rulepack.key")
			}
			key, err := rulepack.LoadOrCreateKey(keyFile)
			if err != nil {
				return exit2(err)
			}
			files, err := packFiles(args[0])
			if err != nil {
				return exit2(err)
			}
			b, err := rulepack.Build(name, version, desc, time.Now(), files, key)
			if err != nil {
				return exit2(fmt.Errorf("building pack: %w", err))
			}
			if out == "" {
				out = name + "-" + version + ".tar.gz"
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return exit2(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d files, signed with %s\n", out, len(files), keyFile)
			return nil
		},
	}
	build.Flags().StringVar(&name, "name", "", "pack name (required)")
	build.Flags().StringVar(&version, "version", "", "pack version (required)")
	build.Flags().StringVar(&desc, "description", "", "description")
	build.Flags().StringVarP(&out, "output", "o", "", "output file (default NAME-VERSION.tar.gz)")
	build.Flags().StringVar(&keyFile, "key", "", "signing key (default DATA-DIR/rulepack.key, created when missing)")
	addDataDirFlag(build, &dataDir, "manager data directory holding rulepack.key")
	_ = build.MarkFlagRequired("name")
	_ = build.MarkFlagRequired("version")
	cmd.AddCommand(build)
	return cmd
}

// packFiles reads DIR/<module>/<rest>: each file belongs to the module
// named by its first directory and keeps its path relative to DIR.
func packFiles(dir string) ([]rulepack.File, error) {
	var files []rulepack.File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		module, _, ok := strings.Cut(rel, "/")
		if !ok {
			return fmt.Errorf("%s: not inside a module directory (want DIR/<module>/…)", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, rulepack.File{Entry: rulepack.Entry{Module: module, Path: rel}, Data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading rules from %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("reading rules from %s: no files", dir)
	}
	return files, nil
}

package spine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/mamori-sec/mamori/agent"
	"github.com/mamori-sec/mamori/manager/pgtest"
)

// Environment of the agent role: this test binary re-executed (possibly
// under `ip netns exec`) runs an agent instead of the tests.
const (
	envRole    = "MAMORI_E2E_ROLE"
	envManager = "MAMORI_E2E_MANAGER"
	envToken   = "MAMORI_E2E_TOKEN"
	envCA      = "MAMORI_E2E_CA"
	envData    = "MAMORI_E2E_DATA"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "agent" {
		if err := runAgentRole(); err != nil {
			fmt.Fprintln(os.Stderr, "agent role:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	pgtest.Main(m)
}

func runAgentRole() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	data := os.Getenv(envData)
	if !agent.Enrolled(data) {
		ca, err := os.ReadFile(os.Getenv(envCA))
		if err != nil {
			return err
		}
		ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = agent.Enroll(ectx, agent.EnrollOptions{ManagerURL: os.Getenv(envManager), Token: os.Getenv(envToken), CAPEM: ca, DataDir: data, Version: "e2e"})
		cancel()
		if err != nil {
			return fmt.Errorf("enrolling: %w", err)
		}
	}
	a, err := agent.New(agentConfig(data), log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func agentConfig(data string) agent.Config {
	return agent.Config{DataDir: data, Version: "e2e", Modules: map[string]func(agent.Env) agent.Module{genName: newGen},
		RetryMin: 200 * time.Millisecond, RetryMax: time.Second, StatusInterval: time.Second}
}

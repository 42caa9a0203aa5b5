// apiserver.go: runs a real kube-apiserver in this process from its own options and
// command-line flags, the way Kubernetes' integration tests start several in one process
// (cmd/kube-apiserver/app/testing.StartTestServer), so that the host and every virtual
// cluster get the real authenticator, authorizer, admission chain and storage.

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/compatibility"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// APIServer is a running kube-apiserver.
type APIServer struct {
	// Loopback is the privileged in-process client configuration (system:apiserver).
	Loopback *rest.Config
	done     chan error
}

// audit is the directory for audit logs ("" for none): see auditFlags.
var audit string

// auditPolicy records every write (and nothing else) at Metadata level: who changed what.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`

// auditFlags are the kube-apiserver flags that write its audit log to <audit>/<name>.log.
func auditFlags(name string) ([]string, error) {
	if audit == "" {
		return nil, nil
	}
	policy := filepath.Join(audit, "policy.yaml")
	if err := writeFiles(audit, map[string][]byte{"policy.yaml": []byte(auditPolicy)}); err != nil {
		return nil, err
	}
	return []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + filepath.Join(audit, name+".log"),
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
	}, nil
}

// k3sAPIServer is what differs between the host's kube-apiserver and a virtual cluster's.
type k3sAPIServer struct {
	Etcd, Address, TLSDir, CertFile, KeyFile, ServiceCIDR, AdmissionPlugins string
	// NodePortRange is "" for the default.
	NodePortRange string
}

// flags are the flags K3s passes to its kube-apiserver (pkg/daemons/control/server.go),
// minus the kubelet and egress plumbing no simulated node needs. tls holds client-ca.crt,
// service.pub and service.key beside the serving pair.
func (k k3sAPIServer) flags() []string {
	flags := []string{
		"--etcd-servers=" + k.Etcd,
		"--storage-backend=etcd3",
		"--bind-address=" + k.Address,
		"--advertise-address=" + k.Address,
		// No endpoint reconciler: the `kubernetes` Service's endpoint would be a loopback
		// address, which EndpointSlice validation refuses.
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + filepath.Join(k.TLSDir, k.CertFile),
		"--tls-private-key-file=" + filepath.Join(k.TLSDir, k.KeyFile),
		"--client-ca-file=" + filepath.Join(k.TLSDir, "client-ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(k.TLSDir, "service.pub"),
		"--service-account-signing-key-file=" + filepath.Join(k.TLSDir, "service.key"),
		"--api-audiences=https://kubernetes.default.svc.cluster.local,k3s",
		"--service-cluster-ip-range=" + k.ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--anonymous-auth=false",
		"--allow-privileged=true",
		"--profiling=false",
		"--enable-admission-plugins=" + k.AdmissionPlugins,
	}
	if k.NodePortRange != "" {
		flags = append(flags, "--service-node-port-range="+k.NodePortRange)
	}
	return flags
}

// Wrap puts a handler in front of the whole handler chain (authentication included), as
// K3s's supervisor does for its /v1-k3s/ endpoints.
type Wrap func(http.Handler) http.Handler

// startAPIServer starts a kube-apiserver with the given flags listening on listener, and
// returns once /readyz answers 200. wrap may be nil.
func startAPIServer(ctx context.Context, listener net.Listener, flags []string, wrap Wrap) (*APIServer, error) {
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)

	// Each server gets its own registry of versions and feature gates (a copy of the
	// process's defaults), so that several can live in one process.
	featureGate := utilfeature.DefaultMutableFeatureGate.DeepCopy()
	registry := basecompatibility.NewComponentGlobalsRegistry()
	effective := compatibility.DefaultBuildEffectiveVersion()
	if err := registry.Register(basecompatibility.DefaultKubeComponent, effective, featureGate); err != nil {
		return nil, err
	}

	s := options.NewServerRunOptions()
	s.Options.GenericServerRunOptions.ComponentGlobalsRegistry = registry
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	s.SecureServing.Listener = listener
	s.SecureServing.BindPort = listener.Addr().(*net.TCPAddr).Port
	if err := fs.Parse(flags); err != nil {
		return nil, fmt.Errorf("kube-apiserver flags: %w", err)
	}
	if err := registry.Set(); err != nil {
		return nil, err
	}

	completed, err := s.Complete(ctx)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return nil, fmt.Errorf("kube-apiserver options: %w", utilerrors.NewAggregate(errs))
	}
	config, err := app.NewConfig(completed)
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		// The aggregator is the outermost server: its chain is what a client reaches first.
		generic := config.Aggregator.GenericConfig
		generic.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
			return wrap(genericapiserver.DefaultBuildHandlerChain(h, c))
		}
	}
	done, err := config.Complete()
	if err != nil {
		return nil, err
	}
	server, err := app.CreateServerChain(done)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver: %w", err)
	}
	a := &APIServer{Loopback: rest.CopyConfig(server.GenericAPIServer.LoopbackClientConfig), done: make(chan error, 1)}
	go func() {
		prepared, err := server.PrepareRun()
		if err == nil {
			err = prepared.Run(ctx)
		}
		a.done <- err
	}()
	if err := a.waitReady(ctx); err != nil {
		// Still running (or stopping): the caller ends ctx and waits for Stopped.
		return a, err
	}
	return a, nil
}

func (a *APIServer) waitReady(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(a.Loopback)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-a.done:
			return fmt.Errorf("kube-apiserver stopped while starting: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		status := 0
		client.CoreV1().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status)
		if status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready after 90s (last /readyz status %d)", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stopped is closed (with the server's error) when the server has stopped.
func (a *APIServer) Stopped() <-chan error { return a.done }

// listenTCP listens on host:port (port 0: any free one).
func listenTCP(host string, port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

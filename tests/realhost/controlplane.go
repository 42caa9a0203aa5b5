// controlplane.go: the host's control plane as K3s runs it on a single node, in this process:
// kine on SQLite as the datastore, a real kube-apiserver with K3s's admission plugins (and
// PodTolerationRestriction when asked), the real kube-controller-manager and kube-scheduler.

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/k3s-io/kine/pkg/endpoint"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// Ranges of the simulated host network. Service ClusterIPs come from a loopback range so that
// the harness can listen on a ClusterIP itself (it plays K3s's server behind K3K's Service);
// pod IPs are never dialled: realhost's kube-proxy maps the few it serves to local addresses
// (Backends, proxy.go).
// Two realhosts on one machine need different ranges (--service-cidr, --node-port-range):
// both listen on their ClusterIPs and node ports on loopback.
const (
	defaultServiceCIDR = "127.43.0.0/16"
	podCIDR            = "10.42.0.0/16"
)

// ControlPlane is the running host control plane.
type ControlPlane struct {
	Dir      string
	URL      string
	ServerCA *CA
	ClientCA *CA
	Admin    Pair
	API      *APIServer
}

// kineListen serves an etcd-compatible API over a SQLite file, as K3s does on one node, on
// a unix socket, and returns the endpoint for --etcd-servers.
func kineListen(ctx context.Context, socket, db string) (string, error) {
	cfg, err := endpoint.Listen(ctx, endpoint.Config{
		Listener: "unix://" + socket,
		Endpoint: "sqlite://" + db + "?_journal=WAL&cache=shared&_busy_timeout=30000",
		// kine's own command-line defaults (pkg/app), which K3s uses too.
		NotifyInterval:      5 * time.Second,
		EmulatedETCDVersion: "3.6.11",
		CompactInterval:     5 * time.Minute,
		CompactTimeout:      5 * time.Second,
		CompactMinRetain:    1000,
		CompactBatchSize:    1000,
		PollBatchSize:       500,
	})
	if err != nil {
		return "", fmt.Errorf("kine: %w", err)
	}
	return strings.Join(cfg.Endpoints, ","), nil
}

type controlPlaneOptions struct {
	Dir                      string
	Socket                   string
	Port                     int
	PodTolerationRestriction bool
	// ServiceCIDR is a loopback range (see defaultServiceCIDR); NodePortRange "lo-hi".
	ServiceCIDR   string
	NodePortRange string
}

func startControlPlane(ctx context.Context, o controlPlaneOptions) (*ControlPlane, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	etcd, err := kineListen(ctx, o.Socket, filepath.Join(o.Dir, "state.db"))
	if err != nil {
		return nil, err
	}
	serverCA, err := NewCA("k3s-server-ca")
	if err != nil {
		return nil, err
	}
	clientCA, err := NewCA("k3s-client-ca")
	if err != nil {
		return nil, err
	}
	listener, err := listenTCP("127.0.0.1", o.Port)
	if err != nil {
		return nil, err
	}
	serving, err := serverCA.ServingCert("kube-apiserver", []string{
		"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", firstIP(o.ServiceCIDR),
	})
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := serviceAccountKeys()
	if err != nil {
		return nil, err
	}
	admin, err := clientCA.ClientCert("system:admin", "system:masters")
	if err != nil {
		return nil, err
	}
	kcm, err := clientCA.ClientCert("system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	sched, err := clientCA.ClientCert("system:kube-scheduler")
	if err != nil {
		return nil, err
	}
	tls := filepath.Join(o.Dir, "tls")
	if err := writeFiles(tls, map[string][]byte{
		"server-ca.crt": serverCA.CertPEM, "server-ca.key": serverCA.KeyPEM,
		"client-ca.crt": clientCA.CertPEM, "client-ca.key": clientCA.KeyPEM,
		"serving.crt": serving.CertPEM, "serving.key": serving.KeyPEM,
		"service.key": saKey, "service.pub": saPub,
	}); err != nil {
		return nil, err
	}
	url := "https://" + listener.Addr().String()

	plugins := "NodeRestriction"
	if o.PodTolerationRestriction {
		plugins += ",PodTolerationRestriction"
	}
	flags := k3sAPIServer{
		Etcd: etcd, Address: "127.0.0.1", TLSDir: tls, CertFile: "serving.crt", KeyFile: "serving.key",
		ServiceCIDR: o.ServiceCIDR, AdmissionPlugins: plugins, NodePortRange: o.NodePortRange,
	}.flags()
	auditing, err := auditFlags("host")
	if err != nil {
		return nil, err
	}
	api, err := startAPIServer(ctx, listener, append(flags, auditing...), nil)
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Dir: o.Dir, URL: url, ServerCA: serverCA, ClientCA: clientCA, Admin: admin, API: api}

	kcmConfig := filepath.Join(o.Dir, "kcm.kubeconfig")
	if err := writeKubeconfig(kcmConfig, url, serverCA.CertPEM, kcm, "default"); err != nil {
		return nil, err
	}
	schedConfig := filepath.Join(o.Dir, "scheduler.kubeconfig")
	if err := writeKubeconfig(schedConfig, url, serverCA.CertPEM, sched, "default"); err != nil {
		return nil, err
	}
	if err := startControllerManager(ctx, []string{
		"--kubeconfig=" + kcmConfig,
		"--authentication-kubeconfig=" + kcmConfig,
		"--authorization-kubeconfig=" + kcmConfig,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + filepath.Join(tls, "service.key"),
		"--root-ca-file=" + filepath.Join(tls, "server-ca.crt"),
		"--cluster-signing-cert-file=" + filepath.Join(tls, "client-ca.crt"),
		"--cluster-signing-key-file=" + filepath.Join(tls, "client-ca.key"),
		"--cluster-cidr=" + podCIDR,
		"--service-cluster-ip-range=" + o.ServiceCIDR,
		"--allocate-node-cidrs=false",
		"--configure-cloud-routes=false",
		"--controllers=*,tokencleaner",
		// Quicker than the defaults, so that tests see node failures within seconds.
		"--node-monitor-period=2s",
		"--node-monitor-grace-period=20s",
		// K3K may create pods before its ResourceQuota has a status; the quota controller
		// counts those at its next full sync (5 min by default). Sooner, for the meter tests.
		"--resource-quota-sync-period=10s",
	}); err != nil {
		return nil, err
	}
	if err := startScheduler(ctx, []string{
		"--kubeconfig=" + schedConfig,
		"--authentication-kubeconfig=" + schedConfig,
		"--authorization-kubeconfig=" + schedConfig,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
	}); err != nil {
		return nil, err
	}
	return cp, nil
}

// AdminConfig is a client configuration for system:admin (group system:masters).
func (cp *ControlPlane) AdminConfig() *rest.Config {
	return cp.configFor(cp.Admin)
}

// ClientConfig is a client configuration for user in group system:masters: each of
// realhost's own parts (K3K, the kubelets, the provisioner) writes under its own name, so an
// audit log tells their writes from the tests' and kaas's (system:admin).
func (cp *ControlPlane) ClientConfig(user string) (*rest.Config, error) {
	pair, err := cp.ClientCA.ClientCert(user, "system:masters")
	if err != nil {
		return nil, err
	}
	return cp.configFor(pair), nil
}

func (cp *ControlPlane) configFor(user Pair) *rest.Config {
	return &rest.Config{
		Host: cp.URL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: cp.ServerCA.CertPEM, CertData: user.CertPEM, KeyData: user.KeyPEM,
		},
		QPS:   200,
		Burst: 400,
	}
}

func parseInto(name string, sets map[string]*pflag.FlagSet, args []string) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	for _, f := range sets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s flags: %w", name, err)
	}
	return nil
}

func startControllerManager(ctx context.Context, args []string) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	all, off, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	sets := s.Flags(all, off, aliases)
	s.ParsedFlags = &sets
	if err := parseInto("kube-controller-manager", sets.FlagSets, args); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	c, err := s.Config(ctx, all, off, aliases)
	if err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	go func() {
		if err := kcmapp.Run(ctx, c.Complete()); err != nil && ctx.Err() == nil {
			fatalf("kube-controller-manager stopped: %v", err)
		}
	}()
	return nil
}

func startScheduler(ctx context.Context, args []string) error {
	opts := schedoptions.NewOptions()
	if err := parseInto("kube-scheduler", opts.Flags.FlagSets, args); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cc, sched, err := schedapp.Setup(ctx, opts)
	if err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	go func() {
		if err := schedapp.Run(ctx, cc, sched); err != nil && ctx.Err() == nil {
			fatalf("kube-scheduler stopped: %v", err)
		}
	}()
	return nil
}

// writeKubeconfig writes a kubeconfig with one cluster, user and context.
func writeKubeconfig(path, server string, caPEM []byte, user Pair, namespace string) error {
	return clientcmd.WriteToFile(kubeconfig(server, caPEM, user, namespace), path)
}

func kubeconfig(server string, caPEM []byte, user Pair, namespace string) clientcmdapi.Config {
	return clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{"realhost": {Server: server, CertificateAuthorityData: caPEM}},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{"admin": {
			ClientCertificateData: user.CertPEM, ClientKeyData: user.KeyPEM,
		}},
		Contexts:       map[string]*clientcmdapi.Context{"realhost": {Cluster: "realhost", AuthInfo: "admin", Namespace: namespace}},
		CurrentContext: "realhost",
	}
}

// firstIP is the first address of a CIDR: the API server's own ClusterIP (kubernetes.default).
func firstIP(cidr string) string {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return ""
	}
	ip := n.IP.To4()
	if ip == nil {
		return ""
	}
	out := make(net.IP, len(ip))
	copy(out, ip)
	out[3]++
	return out.String()
}

// k3s.go: the one part of K3K's world realhost plays itself — what runs inside K3K's server
// pods. No container runs here, so when a simulated kubelet starts a pod of a Cluster's server
// StatefulSet, realhost starts what K3s would start in it, from the same inputs K3s reads:
//
//   - the config Secret K3K mounted into the pod (token, tls-san);
//   - a datastore on the pod's /var/lib/rancher/k3s volume (kine on SQLite in the PV's
//     directory, or in a per-pod directory for ephemeral persistence), holding the cluster's
//     CAs too, so a restart keeps them and a new volume gets new ones, as K3s does;
//   - a real kube-apiserver (the virtual cluster's API) serving with a certificate from the
//     cluster's server CA for those SANs, trusting client certificates of its client CA, with
//     RBAC; plus a kube-controller-manager for it (namespaces, service accounts, garbage
//     collection, ClusterRole aggregation);
//   - K3s's supervisor endpoint /v1-k3s/server-bootstrap (basic auth server:<token>), which
//     K3K calls to read the CAs into the `k3k-<n>-bootstrap` Secret.
//
// The API is reachable where K3K's Service says: on its ClusterIP, port 443 (service ClusterIPs
// are loopback addresses here), and on 127.0.0.1:<nodePort> through a TCP forwarder that plays
// kube-proxy for that Service. What K3s also runs (containerd, the agent, CoreDNS, Traefik,
// local-path, network policy) is not played, and virtual pods are not synced to the host: the
// virtual kubelet (k3k-kubelet) does not run, so pods created inside a virtual cluster stay
// Pending.

package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// VirtualClusters runs the K3s servers of K3K's Clusters.
type VirtualClusters struct {
	client  kubernetes.Interface
	volumes *Volumes
	dir     string
	sockets string

	mu      sync.Mutex
	servers map[string]*virtualServer // namespace/cluster → running server
}

type virtualServer struct {
	pods   map[string]bool // UIDs of the server pods it stands for
	cancel context.CancelFunc
	done   chan struct{}
}

func newVirtualClusters(client kubernetes.Interface, volumes *Volumes, dir string) (*VirtualClusters, error) {
	// Unix socket paths are limited to 108 bytes: keep kine's sockets in a short directory.
	sockets, err := os.MkdirTemp("", "rh")
	if err != nil {
		return nil, err
	}
	return &VirtualClusters{client: client, volumes: volumes, dir: dir, sockets: sockets, servers: map[string]*virtualServer{}}, nil
}

// serverCluster names the K3K Cluster a pod is a server of, if it is one: K3K labels its
// server pods cluster=<name>, role=server and owns them through StatefulSet k3k-<name>-server.
func serverCluster(pod *corev1.Pod) (string, bool) {
	name := pod.Labels["cluster"]
	if name == "" || pod.Labels["role"] != "server" {
		return "", false
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Kind == "StatefulSet" && ref.Name == "k3k-"+name+"-server" {
			return name, true
		}
	}
	return "", false
}

func (v *VirtualClusters) PodStarting(ctx context.Context, pod *corev1.Pod) error {
	name, ok := serverCluster(pod)
	if !ok {
		return nil
	}
	key := pod.Namespace + "/" + name
	v.mu.Lock()
	if s, running := v.servers[key]; running {
		s.pods[string(pod.UID)] = true
		v.mu.Unlock()
		return nil
	}
	v.mu.Unlock()

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	if err := v.start(runCtx, pod, name, done); err != nil {
		// Whatever did start stops before the next try binds the same address.
		cancel()
		<-done
		return err
	}
	v.mu.Lock()
	v.servers[key] = &virtualServer{pods: map[string]bool{string(pod.UID): true}, cancel: cancel, done: done}
	v.mu.Unlock()
	klog.Infof("virtual cluster %s: K3s server running for pod %s", key, pod.Name)
	return nil
}

func (v *VirtualClusters) PodStopped(pod *corev1.Pod) {
	name, ok := serverCluster(pod)
	if !ok {
		return
	}
	key := pod.Namespace + "/" + name
	v.mu.Lock()
	s, running := v.servers[key]
	if running {
		delete(s.pods, string(pod.UID))
		if len(s.pods) == 0 {
			delete(v.servers, key)
		} else {
			running = false
		}
	}
	v.mu.Unlock()
	if running {
		s.cancel()
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			klog.Warningf("virtual cluster %s: server slow to stop", key)
		}
		klog.Infof("virtual cluster %s: K3s server stopped", key)
		if dir := v.ephemeralDir(pod); dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
}

func (v *VirtualClusters) ephemeralDir(pod *corev1.Pod) string {
	for _, vol := range pod.Spec.Volumes {
		if vol.Name == "varlibrancherk3s" && vol.EmptyDir != nil {
			return filepath.Join(v.dir, "pods", string(pod.UID), "varlibrancherk3s")
		}
	}
	return ""
}

// stateDir is the directory behind the pod's /var/lib/rancher/k3s.
func (v *VirtualClusters) stateDir(ctx context.Context, pod *corev1.Pod) (string, error) {
	for _, vol := range pod.Spec.Volumes {
		if vol.Name != "varlibrancherk3s" {
			continue
		}
		if vol.EmptyDir != nil {
			return v.ephemeralDir(pod), nil
		}
		if vol.PersistentVolumeClaim != nil {
			pvc, err := v.client.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, vol.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
				return "", fmt.Errorf("claim %s is not bound yet", pvc.Name)
			}
			return v.volumes.VolumeDir(pvc.Spec.VolumeName), nil
		}
	}
	return "", fmt.Errorf("pod has no varlibrancherk3s volume")
}

// k3sConfig is what realhost reads of the config.yaml K3K writes for K3s.
type k3sConfig struct {
	Token       string   `yaml:"token"`
	TLSSAN      []string `yaml:"tls-san"`
	ServiceCIDR string   `yaml:"service-cidr"`
	Server      string   `yaml:"server"`
}

// config reads the config Secret mounted into the pod: the first server uses K3K's init
// config, the others the joining one (K3K's startup command picks so by ordinal).
func (v *VirtualClusters) config(ctx context.Context, pod *corev1.Pod) (*k3sConfig, error) {
	volume := "config"
	if strings.HasSuffix(pod.Name, "-0") {
		volume = "initconfig"
	}
	secretName := ""
	for _, vol := range pod.Spec.Volumes {
		if vol.Name == volume && vol.Secret != nil {
			secretName = vol.Secret.SecretName
		}
	}
	if secretName == "" {
		return nil, fmt.Errorf("pod mounts no %s secret", volume)
	}
	secret, err := v.client.CoreV1().Secrets(pod.Namespace).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var cfg k3sConfig
	if err := yaml.Unmarshal(secret.Data["config.yaml"], &cfg); err != nil {
		return nil, fmt.Errorf("secret %s: config.yaml: %w", secretName, err)
	}
	if cfg.Token == "" {
		return nil, fmt.Errorf("secret %s: config.yaml has no token", secretName)
	}
	return &cfg, nil
}

// clusterCAs are the certificate authorities K3s keeps in its datastore.
type clusterCAs struct {
	Server, Client, ETCDServer, ETCDPeer, RequestHeader *CA
	ServiceKey, ServicePub                              []byte
}

// loadOrCreateCAs reads the CAs from the state directory, or makes them on first start.
func loadOrCreateCAs(dir string) (*clusterCAs, error) {
	tls := filepath.Join(dir, "server", "tls")
	load := func(name string) (*CA, error) {
		certPEM, err1 := os.ReadFile(filepath.Join(tls, name+".crt"))
		keyPEM, err2 := os.ReadFile(filepath.Join(tls, name+".key"))
		if err1 != nil || err2 != nil {
			ca, err := NewCA("k3s-" + name)
			if err != nil {
				return nil, err
			}
			return ca, writeFiles(tls, map[string][]byte{name + ".crt": ca.CertPEM, name + ".key": ca.KeyPEM})
		}
		block, _ := pem.Decode(certPEM)
		kblock, _ := pem.Decode(keyPEM)
		if block == nil || kblock == nil {
			return nil, fmt.Errorf("%s: damaged CA files", name)
		}
		key, err := x509.ParseECPrivateKey(kblock.Bytes)
		if err != nil {
			return nil, err
		}
		return caFromDER(block.Bytes, key)
	}
	var cas clusterCAs
	var err error
	for name, dst := range map[string]**CA{
		"server-ca": &cas.Server, "client-ca": &cas.Client, "etcd-server-ca": &cas.ETCDServer,
		"etcd-peer-ca": &cas.ETCDPeer, "request-header-ca": &cas.RequestHeader,
	} {
		if *dst, err = load(name); err != nil {
			return nil, err
		}
	}
	keyFile, pubFile := filepath.Join(tls, "service.key"), filepath.Join(tls, "service.pub")
	cas.ServiceKey, err = os.ReadFile(keyFile)
	if err == nil {
		cas.ServicePub, err = os.ReadFile(pubFile)
	}
	if err != nil {
		if cas.ServiceKey, cas.ServicePub, err = serviceAccountKeys(); err != nil {
			return nil, err
		}
		if err := writeFiles(tls, map[string][]byte{"service.key": cas.ServiceKey, "service.pub": cas.ServicePub}); err != nil {
			return nil, err
		}
	}
	return &cas, nil
}

// bootstrapHandler serves K3s's /v1-k3s/server-bootstrap: the CAs a joining server (or K3K)
// needs, PEM in base64, for basic auth "server" with the cluster token. Everything else goes
// to the API server's own chain.
func bootstrapHandler(token string, cas *clusterCAs) Wrap {
	content := func(b []byte) map[string]string {
		return map[string]string{"Timestamp": time.Now().UTC().Format(time.RFC3339), "Content": base64.StdEncoding.EncodeToString(b)}
	}
	body, _ := json.Marshal(map[string]any{
		"serverCA": content(cas.Server.CertPEM), "serverCAKey": content(cas.Server.KeyPEM),
		"clientCA": content(cas.Client.CertPEM), "clientCAKey": content(cas.Client.KeyPEM),
		"etcdServerCA": content(cas.ETCDServer.CertPEM), "etcdServerCAKey": content(cas.ETCDServer.KeyPEM),
		"etcdPeerCA": content(cas.ETCDPeer.CertPEM), "etcdPeerCAKey": content(cas.ETCDPeer.KeyPEM),
		"requestHeaderCA": content(cas.RequestHeader.CertPEM), "requestHeaderCAKey": content(cas.RequestHeader.KeyPEM),
		"serviceKey": content(cas.ServiceKey),
	})
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/v1-k3s/server-bootstrap":
				user, pass, ok := r.BasicAuth()
				if !ok || user != "server" || subtle.ConstantTimeCompare([]byte(pass), []byte(token)) != 1 {
					http.Error(w, "Unauthorized", http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			case "/cacerts":
				_, _ = w.Write(cas.Server.CertPEM)
			case "/ping":
				_, _ = io.WriteString(w, "pong")
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

// start runs the K3s server for pod; done is closed once everything it started has stopped
// (after ctx ends, or at once when start fails before starting anything).
func (v *VirtualClusters) start(ctx context.Context, pod *corev1.Pod, name string, done chan struct{}) (err error) {
	var api *APIServer
	defer func() {
		if err != nil && api == nil {
			close(done)
		} else if err != nil {
			go func() { <-api.Stopped(); close(done) }()
		}
	}()
	cfg, err := v.config(ctx, pod)
	if err != nil {
		return err
	}
	state, err := v.stateDir(ctx, pod)
	if err != nil {
		return err
	}
	service, err := v.client.CoreV1().Services(pod.Namespace).Get(ctx, "k3k-"+name+"-service", metav1.GetOptions{})
	if err != nil {
		return err
	}
	clusterIP := service.Spec.ClusterIP
	if net.ParseIP(clusterIP) == nil {
		return fmt.Errorf("service %s has no ClusterIP", service.Name)
	}
	cas, err := loadOrCreateCAs(state)
	if err != nil {
		return err
	}
	db := filepath.Join(state, "server", "db")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return err
	}
	socket := filepath.Join(v.sockets, string(pod.UID)[:8]+".sock")
	_ = os.Remove(socket)
	kineCfg, err := kineListen(ctx, socket, filepath.Join(db, "state.db"))
	if err != nil {
		return err
	}

	sans := append([]string{clusterIP, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.43.0.1"}, cfg.TLSSAN...)
	serving, err := cas.Server.ServingCert("k3s", sans)
	if err != nil {
		return err
	}
	tls := filepath.Join(state, "server", "tls")
	if err := writeFiles(tls, map[string][]byte{"serving-kube-apiserver.crt": serving.CertPEM, "serving-kube-apiserver.key": serving.KeyPEM}); err != nil {
		return err
	}
	serviceCIDR := cfg.ServiceCIDR
	if serviceCIDR == "" {
		serviceCIDR = "10.43.0.0/16"
	}
	listener, err := listenTCP(clusterIP, 443)
	if err != nil {
		return fmt.Errorf("listening on the ClusterIP %s:443: %w", clusterIP, err)
	}
	flags := k3sAPIServer{
		Etcd: kineCfg, Address: clusterIP, TLSDir: tls,
		CertFile: "serving-kube-apiserver.crt", KeyFile: "serving-kube-apiserver.key",
		ServiceCIDR: serviceCIDR, AdmissionPlugins: "NodeRestriction",
	}.flags()
	auditing, err := auditFlags(pod.Namespace + "_" + name)
	if err != nil {
		return err
	}
	api, err = startAPIServer(ctx, listener, append(flags, auditing...), bootstrapHandler(cfg.Token, cas))
	if err != nil {
		if api == nil {
			listener.Close()
		}
		return fmt.Errorf("virtual cluster API server: %w", err)
	}
	kcmCert, err := cas.Client.ClientCert("system:kube-controller-manager")
	if err != nil {
		return err
	}
	kcmConfig := filepath.Join(state, "server", "cred", "controller.kubeconfig")
	if err := os.MkdirAll(filepath.Dir(kcmConfig), 0o700); err != nil {
		return err
	}
	if err := writeKubeconfig(kcmConfig, "https://"+net.JoinHostPort(clusterIP, "443"), cas.Server.CertPEM, kcmCert, "default"); err != nil {
		return err
	}
	if err := startVirtualControllers(ctx, kcmConfig, tls, serviceCIDR); err != nil {
		return err
	}
	forwarders := forwardNodePorts(ctx, service)
	if l, err := serveETCD(ctx, service, socket, cas); err != nil {
		return err
	} else if l != nil {
		forwarders = append(forwarders, l)
	}
	go func() {
		<-api.Stopped()
		for _, l := range forwarders {
			l.Close()
		}
		close(done)
	}()
	return nil
}

// startVirtualControllers runs the controllers K3s's embedded controller manager runs that a
// tenant notices without nodes: namespace deletion, service accounts and their tokens, garbage
// collection, ClusterRole aggregation (admin/edit/view), root CA publishing.
func startVirtualControllers(ctx context.Context, kubeconfig, tls, serviceCIDR string) error {
	return startControllerManager(ctx, []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + filepath.Join(tls, "service.key"),
		"--root-ca-file=" + filepath.Join(tls, "server-ca.crt"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--controllers=namespace-controller,serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller,clusterrole-aggregation-controller,root-ca-certificate-publisher-controller,resourcequota-controller,deployment-controller,replicaset-controller",
	})
}

// forwardNodePorts plays kube-proxy for the Service's node ports: 127.0.0.1:<nodePort> to the
// ClusterIP and port, bytes passed through untouched (TLS ends at the API server, which sees
// the client's certificate).
func forwardNodePorts(ctx context.Context, service *corev1.Service) []net.Listener {
	var listeners []net.Listener
	for _, port := range service.Spec.Ports {
		if port.NodePort == 0 || port.Port != 443 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port.NodePort))))
		if err != nil {
			klog.Errorf("node port %d of %s/%s: %v", port.NodePort, service.Namespace, service.Name, err)
			continue
		}
		target := net.JoinHostPort(service.Spec.ClusterIP, strconv.Itoa(int(port.Port)))
		listeners = append(listeners, l)
		go func() {
			<-ctx.Done()
			l.Close()
		}()
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				go pipe(conn, target)
			}
		}()
	}
	return listeners
}

// serveETCD plays the client port of K3s's embedded etcd on the ClusterIP, port 2379, when
// (and only when) K3K's Service carries that port, as kube-proxy would route it: TLS with a
// certificate of the cluster's etcd server CA, client certificates of the same CA required,
// then the datastore's etcd API (kine answers MemberList; K3K's StatefulSet controller calls
// it before it releases a server pod's etcd finalizer).
func serveETCD(ctx context.Context, service *corev1.Service, socket string, cas *clusterCAs) (net.Listener, error) {
	carries := false
	for _, port := range service.Spec.Ports {
		if port.Port == 2379 {
			carries = true
		}
	}
	if !carries {
		return nil, nil
	}
	ip := service.Spec.ClusterIP
	pair, err := cas.ETCDServer.ServingCert("etcd", []string{ip, service.Name, service.Name + "." + service.Namespace, "localhost", "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cas.ETCDServer.Cert)
	l, err := tls.Listen("tcp", net.JoinHostPort(ip, "2379"), &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd port on %s:2379: %w", ip, err)
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go pipeTo(conn, "unix", socket)
		}
	}()
	return l, nil
}

func pipe(conn net.Conn, target string) { pipeTo(conn, "tcp", target) }

// pipeTo copies bytes both ways between conn and a new connection to target.
func pipeTo(conn net.Conn, network, target string) {
	defer conn.Close()
	upstream, err := net.DialTimeout(network, target, 5*time.Second)
	if err != nil {
		return
	}
	defer upstream.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { _, _ = io.Copy(upstream, conn); closeWrite(upstream); wg.Done() }()
	go func() { _, _ = io.Copy(conn, upstream); closeWrite(conn); wg.Done() }()
	wg.Wait()
}

func closeWrite(c net.Conn) {
	if t, ok := c.(interface{ CloseWrite() error }); ok {
		_ = t.CloseWrite()
	}
}

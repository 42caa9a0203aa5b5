// k3s.go: the one part of K3K's world realhost plays itself — what runs inside K3K's server
// pods. No container runs here, so when a simulated kubelet starts a pod of a Cluster's server
// StatefulSet, realhost starts what K3s would start in it, from the same inputs K3s reads:
//
//   - the config Secret K3K mounted into the pod (token, tls-san), and the Cluster's
//     serverArgs in the pod's start script: each `--kube-apiserver-arg=NAME=VALUE` becomes the
//     apiserver flag `--NAME=VALUE`, a path under a secretMount pointing at realhost's copy
//     of that Secret (so an `authentication-config` is read by the real JWT authenticator);
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
// are loopback addresses here), with etcd's client port on ClusterIP:2379 when the Service
// carries it. Each server pod's own addresses, <podIP>:6443 and <podIP>:2379, are registered in
// Backends, so that realhost's kube-proxy (proxy.go) reaches them through any NodePort Service
// whose endpoints they are — K3K's own with expose.nodePort, or one kaas makes.
//
// One API server stands for all server pods of a Cluster. K3s reads its config when it starts
// and not after, so a changed tls-san takes effect only when a server pod (re)starts: every
// server pod that starts reads the config Secret again and, if its tls-san differs from the
// one the served certificate was issued for, re-issues that certificate (the API server
// reloads the files). Until then the old certificate is served, as by a K3s that has not
// restarted.
//
// What K3s also runs (containerd, the agent, CoreDNS, Traefik, local-path, network policy) is
// not played, and virtual pods are not synced to the host: the virtual kubelet (k3k-kubelet)
// does not run, so pods created inside a virtual cluster stay Pending.

package main

import (
	"bytes"
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
	client   kubernetes.Interface
	volumes  *Volumes
	backends *Backends
	dir      string
	sockets  string

	mu       sync.Mutex
	servers  map[string]*virtualServer // namespace/cluster → running server
	starting map[string]bool           // namespace/cluster → a server is being started
}

// K3s's ports in a server pod: the API server (supervisor included) and etcd's client port.
const (
	k3sAPIPort  = 6443
	k3sETCDPort = 2379
)

type virtualServer struct {
	pods   map[string]string // UID → pod IP of the server pods it stands for
	cancel context.CancelFunc
	done   chan struct{}

	// Where it listens: the API server on apiAddr, etcd on etcdAddr ("" when not served).
	apiAddr, etcdAddr string

	// What the serving certificate is made from; certMu serialises re-issuing it.
	certMu    sync.Mutex
	clusterIP string
	tlsDir    string
	cas       *clusterCAs
	tlsSAN    []string // the config's tls-san the served certificate was issued for
}

func newVirtualClusters(client kubernetes.Interface, volumes *Volumes, backends *Backends, dir string) (*VirtualClusters, error) {
	// Unix socket paths are limited to 108 bytes: keep kine's sockets in a short directory.
	sockets, err := os.MkdirTemp("", "rh")
	if err != nil {
		return nil, err
	}
	return &VirtualClusters{
		client: client, volumes: volumes, backends: backends, dir: dir, sockets: sockets,
		servers: map[string]*virtualServer{}, starting: map[string]bool{},
	}, nil
}

// register makes the pod's K3s ports reach the server in Backends.
func (v *VirtualClusters) register(s *virtualServer, podIP string) {
	if podIP == "" {
		return
	}
	v.backends.Register(podIP, k3sAPIPort, s.apiAddr)
	if s.etcdAddr != "" {
		v.backends.Register(podIP, k3sETCDPort, s.etcdAddr)
	}
}

func (v *VirtualClusters) unregister(podIP string) {
	if podIP == "" {
		return
	}
	v.backends.Unregister(podIP, k3sAPIPort)
	v.backends.Unregister(podIP, k3sETCDPort)
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
	s, running := v.servers[key]
	already := !running && v.starting[key]
	if !running && !already {
		v.starting[key] = true
	}
	v.mu.Unlock()
	if already {
		// One start at a time: a second would take over the datastore's socket of the first.
		return fmt.Errorf("virtual cluster %s: a server is already starting", key)
	}
	if running {
		// K3s in this pod starts from the config Secret as it is now.
		cfg, err := v.config(ctx, pod)
		if err != nil {
			return err
		}
		if err := s.serveSANs(ctx, cfg.TLSSAN); err != nil {
			return fmt.Errorf("serving certificate: %w", err)
		}
		v.mu.Lock()
		if v.servers[key] != s {
			// Stopped meanwhile: the retry starts a new one.
			v.mu.Unlock()
			return fmt.Errorf("virtual cluster %s stopped while the pod started", key)
		}
		s.pods[string(pod.UID)] = pod.Status.PodIP
		v.register(s, pod.Status.PodIP)
		v.mu.Unlock()
		return nil
	}

	defer func() {
		v.mu.Lock()
		delete(v.starting, key)
		v.mu.Unlock()
	}()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s, err := v.start(runCtx, pod, name, done)
	if err != nil {
		// Whatever did start stops before the next try binds the same address.
		cancel()
		<-done
		return err
	}
	s.pods, s.cancel, s.done = map[string]string{string(pod.UID): pod.Status.PodIP}, cancel, done
	v.mu.Lock()
	v.servers[key] = s
	v.register(s, pod.Status.PodIP)
	v.mu.Unlock()
	klog.Infof("virtual cluster %s: K3s server running for pod %s (%s)", key, pod.Name, pod.Status.PodIP)
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
		if ip, ok := s.pods[string(pod.UID)]; ok {
			v.unregister(ip)
		}
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

// serverArgs are the kube-apiserver flags K3s adds from the Cluster's serverArgs: K3K puts
// them in the server container's start script (`EXTRA_ARGS=…`, then `k3s server … $EXTRA_ARGS`),
// and K3s turns each `--kube-apiserver-arg=NAME=VALUE` into the apiserver flag
// `--NAME=VALUE` (other k3s flags are not played here). A path under one of the container's
// secret mounts (the Cluster's secretMounts) is where K3s would find that Secret's keys:
// realhost writes them under dir and points the flag there.
func (v *VirtualClusters) serverArgs(ctx context.Context, pod *corev1.Pod, dir string) ([]string, error) {
	if len(pod.Spec.Containers) == 0 {
		return nil, nil
	}
	c := pod.Spec.Containers[0]
	var extra []string
	for _, part := range append(append([]string{}, c.Command...), c.Args...) {
		for _, line := range strings.Split(part, "\n") {
			line = strings.TrimSpace(line)
			if rest, ok := strings.CutPrefix(line, "EXTRA_ARGS="); ok && !strings.HasPrefix(rest, "\"") {
				extra = append(extra, strings.Fields(rest)...)
			}
		}
	}
	var flags []string
	for _, arg := range extra {
		kv, ok := strings.CutPrefix(arg, "--kube-apiserver-arg=")
		if !ok {
			continue
		}
		name, value, _ := strings.Cut(kv, "=")
		local, err := v.mountedPath(ctx, pod, c, value, dir)
		if err != nil {
			return nil, fmt.Errorf("serverArgs %s: %w", arg, err)
		}
		flags = append(flags, "--"+name+"="+local)
	}
	return flags, nil
}

// mountedPath maps a path inside the server container to realhost's copy of what is mounted
// there (a Secret, or projected Secrets, written out now); other values come back unchanged.
func (v *VirtualClusters) mountedPath(ctx context.Context, pod *corev1.Pod, c corev1.Container, value, dir string) (string, error) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(value, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		var secrets []*corev1.SecretProjection
		for _, vol := range pod.Spec.Volumes {
			if vol.Name != m.Name {
				continue
			}
			if vol.Secret != nil {
				secrets = append(secrets, &corev1.SecretProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: vol.Secret.SecretName},
					Items:                vol.Secret.Items, Optional: vol.Secret.Optional,
				})
			}
			if vol.Projected != nil {
				for _, src := range vol.Projected.Sources {
					if src.Secret != nil {
						secrets = append(secrets, src.Secret)
					}
				}
			}
		}
		if len(secrets) == 0 {
			continue
		}
		target := filepath.Join(dir, m.Name)
		if err := os.RemoveAll(target); err != nil {
			return "", err
		}
		if err := os.MkdirAll(target, 0o700); err != nil {
			return "", err
		}
		for _, p := range secrets {
			secret, err := v.client.CoreV1().Secrets(pod.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				if p.Optional != nil && *p.Optional {
					continue
				}
				return "", fmt.Errorf("secret %s mounted at %s: %w", p.Name, m.MountPath, err)
			}
			files := map[string][]byte{}
			if len(p.Items) == 0 {
				for k, b := range secret.Data {
					files[k] = b
				}
			}
			for _, it := range p.Items {
				b, ok := secret.Data[it.Key]
				if !ok {
					return "", fmt.Errorf("secret %s has no key %s", p.Name, it.Key)
				}
				files[it.Path] = b
			}
			for name, b := range files {
				path := filepath.Join(target, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					return "", err
				}
				if err := os.WriteFile(path, b, 0o600); err != nil {
					return "", err
				}
			}
		}
		if m.SubPath != "" {
			rel = filepath.Join(m.SubPath, rel)
		}
		return filepath.Join(target, rel), nil
	}
	return value, nil
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
func (v *VirtualClusters) start(ctx context.Context, pod *corev1.Pod, name string, done chan struct{}) (_ *virtualServer, err error) {
	var api *APIServer
	// The datastore outlives the API server, whose shutdown still writes to it (it deletes its
	// lease): stopped with ctx, the API server would wait 10 s for that write before it
	// releases the ClusterIP, holding up the server of a recreated pod.
	stopKine := func() {}
	defer func() {
		if err != nil && api == nil {
			stopKine()
			close(done)
		} else if err != nil {
			go func() { <-api.Stopped(); stopKine(); close(done) }()
		}
	}()
	cfg, err := v.config(ctx, pod)
	if err != nil {
		return nil, err
	}
	state, err := v.stateDir(ctx, pod)
	if err != nil {
		return nil, err
	}
	service, err := v.client.CoreV1().Services(pod.Namespace).Get(ctx, "k3k-"+name+"-service", metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	clusterIP := service.Spec.ClusterIP
	if net.ParseIP(clusterIP) == nil {
		return nil, fmt.Errorf("service %s has no ClusterIP", service.Name)
	}
	cas, err := loadOrCreateCAs(state)
	if err != nil {
		return nil, err
	}
	db := filepath.Join(state, "server", "db")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return nil, err
	}
	socket := filepath.Join(v.sockets, string(pod.UID)[:8]+".sock")
	_ = os.Remove(socket)
	kineCtx, cancelKine := context.WithCancel(context.WithoutCancel(ctx))
	stopKine = cancelKine
	kineCfg, err := kineListen(kineCtx, socket, filepath.Join(db, "state.db"))
	if err != nil {
		return nil, err
	}

	tls := filepath.Join(state, "server", "tls")
	s := &virtualServer{
		apiAddr:   net.JoinHostPort(clusterIP, "443"),
		clusterIP: clusterIP, tlsDir: tls, cas: cas, tlsSAN: cfg.TLSSAN,
	}
	if _, err := s.writeServingCert(cfg.TLSSAN); err != nil {
		return nil, err
	}
	serviceCIDR := cfg.ServiceCIDR
	if serviceCIDR == "" {
		serviceCIDR = "10.43.0.0/16"
	}
	listener, err := listenTCP(clusterIP, 443)
	if err != nil {
		return nil, fmt.Errorf("listening on the ClusterIP %s:443: %w", clusterIP, err)
	}
	flags := k3sAPIServer{
		Etcd: kineCfg, Address: clusterIP, TLSDir: tls,
		CertFile: servingCertFile, KeyFile: servingKeyFile,
		ServiceCIDR: serviceCIDR, AdmissionPlugins: "NodeRestriction",
	}.flags()
	extra, err := v.serverArgs(ctx, pod, filepath.Join(state, "server", "mounts"))
	if err != nil {
		return nil, err
	}
	flags = append(flags, extra...)
	auditing, err := auditFlags(pod.Namespace + "_" + name)
	if err != nil {
		return nil, err
	}
	api, err = startAPIServer(ctx, listener, append(flags, auditing...), bootstrapHandler(cfg.Token, cas))
	if err != nil {
		if api == nil {
			listener.Close()
		}
		return nil, fmt.Errorf("virtual cluster API server: %w", err)
	}
	kcmCert, err := cas.Client.ClientCert("system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	kcmConfig := filepath.Join(state, "server", "cred", "controller.kubeconfig")
	if err := os.MkdirAll(filepath.Dir(kcmConfig), 0o700); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(kcmConfig, "https://"+s.apiAddr, cas.Server.CertPEM, kcmCert, "default"); err != nil {
		return nil, err
	}
	if err := startVirtualControllers(ctx, kcmConfig, tls, serviceCIDR); err != nil {
		return nil, err
	}
	etcd, err := serveETCD(ctx, service, socket, cas)
	if err != nil {
		return nil, err
	}
	if etcd != nil {
		s.etcdAddr = etcd.Addr().String()
	}
	go func() {
		<-api.Stopped()
		if etcd != nil {
			etcd.Close()
		}
		stopKine()
		close(done)
	}()
	return s, nil
}

// The serving certificate's files in the server's TLS directory, as K3s names them.
const (
	servingCertFile = "serving-kube-apiserver.crt"
	servingKeyFile  = "serving-kube-apiserver.key"
)

// writeServingCert issues a serving certificate for K3s's own names and the config's tls-san,
// as K3s does at start, and writes it where the API server reads it; it returns the leaf.
func (s *virtualServer) writeServingCert(tlsSAN []string) ([]byte, error) {
	sans := append([]string{s.clusterIP, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.43.0.1"}, tlsSAN...)
	serving, err := s.cas.Server.ServingCert("k3s", sans)
	if err != nil {
		return nil, err
	}
	// The key first: the API server's reload skips a pair that does not match, and picks up
	// the pair once the certificate follows.
	if err := writeFiles(s.tlsDir, map[string][]byte{servingKeyFile: serving.KeyPEM}); err != nil {
		return nil, err
	}
	if err := writeFiles(s.tlsDir, map[string][]byte{servingCertFile: serving.CertPEM}); err != nil {
		return nil, err
	}
	block, _ := pem.Decode(serving.CertPEM)
	if block == nil {
		return nil, fmt.Errorf("issued certificate does not decode")
	}
	return block.Bytes, nil
}

// serveSANs makes the running server serve a certificate for tlsSAN, when the one it serves
// was issued for another list: it rewrites the files, and returns once the API server (which
// watches them, as it does any --tls-cert-file) hands out the new certificate.
func (s *virtualServer) serveSANs(ctx context.Context, tlsSAN []string) error {
	s.certMu.Lock()
	defer s.certMu.Unlock()
	if sameSet(s.tlsSAN, tlsSAN) {
		return nil
	}
	leaf, err := s.writeServingCert(tlsSAN)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		served, err := servedCertificate(ctx, s.apiAddr)
		if err == nil && bytes.Equal(served, leaf) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server still serves its old certificate 30s after the new one was written (last error: %v)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	klog.Infof("virtual API server on %s: serving certificate re-issued for tls-san %v (was %v)", s.apiAddr, tlsSAN, s.tlsSAN)
	s.tlsSAN = tlsSAN
	return nil
}

// servedCertificate is the DER of the leaf certificate a TLS server at addr presents.
func servedCertificate(ctx context.Context, addr string) ([]byte, error) {
	dialer := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("no certificate")
	}
	return certs[0].Raw, nil
}

// sameSet tells whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	count := map[string]int{}
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		count[x]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
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

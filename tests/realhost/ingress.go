// ingress.go: what realhost plays of K3s's ingress controller (Traefik) for TLS passthrough:
// Traefik's IngressRouteTCP CRD (the part of its schema a passthrough route uses, so the real
// API server validates what kaas writes) and an SNI router on --ingress-listen, the stand-in
// for Traefik's `websecure` entry point.
//
// Like Traefik with `tls.passthrough: true`, the router reads the server name from the
// client's TLS ClientHello without terminating TLS, picks the route whose `HostSNI(...)`
// matches it, and passes the bytes, ClientHello included, to a ready endpoint of the route's
// Service port (Traefik dials endpoints, not the ClusterIP). A connection that names no routed
// host, or that is no TLS, is closed, as Traefik closes it when no TCP router matches and no
// HTTP router exists. Routes on other entry points, and routes that do not pass TLS through
// (Traefik would terminate TLS there with its own certificate), are not served.

package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sync"
	"time"

	"crypto/tls"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

//go:embed traefik-ingressroutetcp.yaml
var ingressRouteTCPCRD []byte

var ingressRouteTCPs = schema.GroupVersionResource{Group: "traefik.io", Version: "v1alpha1", Resource: "ingressroutetcps"}

// The entry point Traefik serves TLS on in K3s.
const tlsEntryPoint = "websecure"

var hostSNI = regexp.MustCompile("HostSNI\\(\\s*`([^`]+)`\\s*\\)")

// tcpRoute is where one host name goes.
type tcpRoute struct {
	namespace, service string
	port               int64 // the Service port (number)
	owner              string
}

type ingressRouter struct {
	proxy *kubeProxy

	mu     sync.RWMutex
	routes map[string]tcpRoute // by host name
}

// installIngressRouteCRD creates Traefik's IngressRouteTCP CRD and waits until it is served.
func installIngressRouteCRD(ctx context.Context, cfg *rest.Config) error {
	client, err := apiextensions.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(ingressRouteTCPCRD), 4096).Decode(&crd); err != nil {
		return fmt.Errorf("the IngressRouteTCP CRD: %w", err)
	}
	if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("CRD %s: %w", crd.Name, err)
	}
	return waitFor(ctx, "the IngressRouteTCP CRD", func() bool {
		got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true
			}
		}
		return false
	})
}

// startIngress follows IngressRouteTCPs and serves them on listen; the address it listens on
// is written to addrOut (when set), since listen may ask for any free port.
func startIngress(ctx context.Context, cfg *rest.Config, proxy *kubeProxy, listen, addrOut string) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	r := &ingressRouter{proxy: proxy, routes: map[string]tcpRoute{}}
	factory := dynamicinformer.NewDynamicSharedInformerFactory(client, 30*time.Second)
	informer := factory.ForResource(ingressRouteTCPs).Informer()
	lister := factory.ForResource(ingressRouteTCPs).Lister()
	rebuild := func(any) { r.rebuild(lister) }
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: rebuild, UpdateFunc: func(_, obj any) { rebuild(obj) }, DeleteFunc: rebuild,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--ingress-listen: %w", err)
	}
	if addrOut != "" {
		if err := os.WriteFile(addrOut, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	klog.Infof("ingress: entry point %s listening on %s", tlsEntryPoint, l.Addr())
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
			go r.serve(conn)
		}
	}()
	return nil
}

// rebuild recomputes every host's route from the listed IngressRouteTCPs. A host claimed by
// two routes goes to the one whose namespace/name sorts first (Traefik would pick by priority,
// then rule length; kaas writes one route per host).
func (r *ingressRouter) rebuild(lister cache.GenericLister) {
	objs, err := lister.List(labels.Everything())
	if err != nil {
		return
	}
	routes := map[string]tcpRoute{}
	for _, obj := range objs {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		owner := u.GetNamespace() + "/" + u.GetName()
		entryPoints, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "entryPoints")
		passthrough, _, _ := unstructured.NestedBool(u.Object, "spec", "tls", "passthrough")
		onTLS := len(entryPoints) == 0 // Traefik: no entryPoints means every entry point
		for _, e := range entryPoints {
			onTLS = onTLS || e == tlsEntryPoint
		}
		if !onTLS || !passthrough {
			klog.V(2).Infof("ingress: %s is not a TLS passthrough route on %s; not served", owner, tlsEntryPoint)
			continue
		}
		list, _, _ := unstructured.NestedSlice(u.Object, "spec", "routes")
		for _, item := range list {
			route, ok := item.(map[string]any)
			if !ok {
				continue
			}
			match, _, _ := unstructured.NestedString(route, "match")
			services, _, _ := unstructured.NestedSlice(route, "services")
			if len(services) == 0 {
				continue
			}
			first, ok := services[0].(map[string]any)
			if !ok {
				continue
			}
			name, _, _ := unstructured.NestedString(first, "name")
			namespace, found, _ := unstructured.NestedString(first, "namespace")
			if !found || namespace == "" {
				namespace = u.GetNamespace()
			}
			port, _, _ := unstructured.NestedInt64(first, "port")
			for _, m := range hostSNI.FindAllStringSubmatch(match, -1) {
				host := m[1]
				if have, taken := routes[host]; taken && have.owner < owner {
					continue
				}
				routes[host] = tcpRoute{namespace: namespace, service: name, port: port, owner: owner}
			}
		}
	}
	r.mu.Lock()
	r.routes = routes
	r.mu.Unlock()
}

var errHelloRead = errors.New("client hello read")

// readOnly lets crypto/tls read a ClientHello from a connection without writing back.
type readOnly struct {
	net.Conn
	reader io.Reader
}

func (c readOnly) Read(p []byte) (int, error)  { return c.reader.Read(p) }
func (c readOnly) Write([]byte) (int, error)   { return 0, io.ErrClosedPipe }
func (c readOnly) SetDeadline(time.Time) error { return nil }

// serverName reads the ClientHello from conn and returns the name it asks for and the bytes
// read, which the backend must still receive.
func serverName(conn net.Conn) (string, []byte) {
	var read bytes.Buffer
	var name string
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_ = tls.Server(readOnly{Conn: conn, reader: io.TeeReader(conn, &read)}, &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			name = hello.ServerName
			return nil, errHelloRead
		},
	}).Handshake()
	_ = conn.SetReadDeadline(time.Time{})
	return name, read.Bytes()
}

func (r *ingressRouter) serve(conn net.Conn) {
	name, hello := serverName(conn)
	r.mu.RLock()
	route, ok := r.routes[name]
	r.mu.RUnlock()
	if name == "" || !ok {
		klog.V(2).Infof("ingress: no route for server name %q", name)
		conn.Close()
		return
	}
	service, err := r.proxy.services.Services(route.namespace).Get(route.service)
	if err != nil {
		conn.Close()
		return
	}
	portName := ""
	found := false
	for _, p := range service.Spec.Ports {
		if int64(p.Port) == route.port {
			portName, found = p.Name, true
		}
	}
	if !found {
		conn.Close()
		return
	}
	endpoints := r.proxy.readyEndpoints(route.namespace, route.service, portName)
	if len(endpoints) == 0 {
		conn.Close()
		return
	}
	ep := endpoints[0]
	local, ok := r.proxy.backends.Lookup(ep.ip, ep.port)
	if !ok {
		conn.Close()
		return
	}
	pipePrefixed(conn, hello, "tcp", local)
}

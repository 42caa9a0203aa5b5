// k3k.go: the real K3K controllers (github.com/rancher/k3k, the release go.mod pins), started in
// this process exactly as K3K's own main.go starts them, with what K3K's Helm chart installs
// first: its CRDs (read from the same release's chart), the k3k-system namespace and the
// ClusterRoles/ClusterRoleBindings `k3k-kubelet-node` and `k3k-priorityclass`.

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/rancher/k3k/pkg/apis/k3k.io/v1beta1"
	"github.com/rancher/k3k/pkg/buildinfo"
	"github.com/rancher/k3k/pkg/controller/cluster"
	"github.com/rancher/k3k/pkg/controller/cluster/agent"
	"github.com/rancher/k3k/pkg/controller/policy"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// k3kVersion is the K3K release whose controllers and CRDs realhost runs (go.mod pins it).
const k3kVersion = "v1.1.0"

const k3kNamespace = "k3k-system"

// installCRDs creates every CustomResourceDefinition in dir and waits until each is Established.
func installCRDs(ctx context.Context, cfg *rest.Config, dir string) error {
	client, err := apiextensions.NewForConfig(cfg)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no CRDs in %s", dir)
	}
	var names []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := decoder.Decode(&crd); err != nil {
				break
			}
			if crd.Name == "" {
				continue
			}
			if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("CRD %s: %w", crd.Name, err)
			}
			names = append(names, crd.Name)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		for {
			crd, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err == nil && established(crd) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not established", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// installK3kChartObjects creates what the chart's rbac.yaml and namespace give the controller.
func installK3kChartObjects(ctx context.Context, client kubernetes.Interface) error {
	if err := ignoreExists(client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k3kNamespace}}, metav1.CreateOptions{})); err != nil {
		return err
	}
	roles := []*rbacv1.ClusterRole{
		{ObjectMeta: metav1.ObjectMeta{Name: "k3k-kubelet-node"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"nodes", "nodes/proxy", "namespaces"}, Verbs: []string{"get", "list", "watch"},
		}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "k3k-priorityclass"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"scheduling.k8s.io"}, Resources: []string{"priorityclasses"}, Verbs: []string{"*"},
		}}},
	}
	for _, role := range roles {
		if err := ignoreExists(client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})); err != nil {
			return err
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		}
		if err := ignoreExists(client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})); err != nil {
			return err
		}
	}
	return nil
}

// ignoreExists passes on a create's error unless the object was already there.
func ignoreExists[T any](_ T, err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// startK3k runs K3K's cluster, StatefulSet, Service, Pod and policy controllers.
func startK3k(ctx context.Context, cfg *rest.Config, logger logr.Logger) error {
	// The chart sets CONTROLLER_NAMESPACE from the pod's namespace; the port allocator keeps
	// its ConfigMaps there.
	if err := os.Setenv("CONTROLLER_NAMESPACE", k3kNamespace); err != nil {
		return err
	}
	buildinfo.Version = k3kVersion
	ctrl.SetLogger(logger)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1beta1.AddToScheme(scheme); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("k3k manager: %w", err)
	}
	// The chart's defaults (values.yaml): images are named but never pulled here.
	config := cluster.Config{
		SharedAgentImage:  "rancher/k3k-kubelet:" + k3kVersion,
		VirtualAgentImage: "rancher/k3s",
		K3SServerImage:    "rancher/k3s",
	}
	const reconciles = 50
	ports, err := agent.NewPortAllocator(ctx, mgr.GetClient())
	if err != nil {
		return err
	}
	if err := mgr.Add(ports.InitPortAllocatorConfig(ctx, mgr.GetClient(), "50000-51000")); err != nil {
		return err
	}
	if err := cluster.Add(ctx, mgr, &config, reconciles, ports, nil); err != nil {
		return fmt.Errorf("k3k cluster controller: %w", err)
	}
	if err := cluster.AddStatefulSetController(ctx, mgr, reconciles); err != nil {
		return err
	}
	if err := cluster.AddServiceController(ctx, mgr, reconciles); err != nil {
		return err
	}
	if err := cluster.AddPodController(ctx, mgr, reconciles); err != nil {
		return err
	}
	if err := policy.Add(mgr, "", reconciles); err != nil {
		return fmt.Errorf("k3k policy controller: %w", err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil && ctx.Err() == nil {
			klog.Errorf("k3k controllers stopped: %v", err)
		}
	}()
	return nil
}

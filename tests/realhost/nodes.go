// nodes.go: the simulated nodes and what plays their kubelets. This is the documented stand-in
// for kubelets (kwok's controllers need Kubernetes 1.36 modules, K3K 1.1 pins 1.35): it registers
// Nodes with labels, capacity and a Ready condition, renews their Leases in kube-node-lease as a
// kubelet does (or the node lifecycle controller taints them not-ready), turns pods bound to
// them Running (no containers run), and finishes their deletion as a kubelet does — the final
// delete with grace period 0 once the pod is marked for deletion. It does nothing a real
// kubelet would refuse to do, and it never changes what the scheduler decided.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const kubeletVersion = "v1.35.4+k3s1"

// PodHooks are told when a simulated kubelet starts and stops a pod: realhost uses them to run
// what K3K's server pods would run (the virtual cluster's API server).
type PodHooks interface {
	// PodStarting runs before the pod is reported Running, with pod.Status.PodIP already set
	// to the address its sandbox got (as a kubelet sets up the pod's network before its
	// containers start); an error keeps the pod Pending and is retried.
	PodStarting(ctx context.Context, pod *corev1.Pod) error
	// PodStopped follows every PodStarting that succeeded, once the pod stops.
	PodStopped(pod *corev1.Pod)
}

// Kubelets simulates the kubelets of every node.
type Kubelets struct {
	client kubernetes.Interface
	nodes  []string
	hooks  PodHooks

	mu      sync.Mutex
	nextIP  map[string]int
	ips     map[string]string // pod UID → its IP, from the sandbox's start to the pod's end
	inUse   map[string]bool   // pod IPs given out
	hooked  map[string]bool   // pod UID → PodStarting succeeded
	started map[string]bool   // pod UID → reported Running
}

type nodeSpec struct {
	Count  int
	CPU    string
	Memory string
	Pods   string
	// DisableNetworkPolicy: the K3s server was started with --disable-network-policy, which
	// its node-args annotation shows (see k3sNodeArgs).
	DisableNetworkPolicy bool
}

// k3sNodeArgs is the `k3s.io/node-args` annotation K3s writes on its nodes: the arguments
// that node's k3s runs with, config files included, secrets masked (`********`).
func k3sNodeArgs(index int, spec nodeSpec) string {
	args := []string{"agent", "--server", "https://127.0.1.1:6443", "--token", "********"}
	if index == 1 {
		args = []string{"server"}
		if spec.DisableNetworkPolicy {
			args = append(args, "--disable-network-policy")
		}
	}
	out, _ := json.Marshal(args)
	return string(out)
}

func nodeName(i int) string { return fmt.Sprintf("realhost-node-%d", i) }

// startKubelets registers the nodes and starts their kubelets.
func startKubelets(ctx context.Context, client kubernetes.Interface, spec nodeSpec, hooks PodHooks) (*Kubelets, error) {
	k := &Kubelets{
		client: client, hooks: hooks, nextIP: map[string]int{},
		ips: map[string]string{}, inUse: map[string]bool{}, hooked: map[string]bool{}, started: map[string]bool{},
	}
	for i := 1; i <= spec.Count; i++ {
		name := nodeName(i)
		if err := k.register(ctx, i, name, spec); err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		k.nodes = append(k.nodes, name)
	}
	go k.heartbeat(ctx)

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		}))
	pods := factory.Core().V1().Pods().Informer()
	queue := make(chan *corev1.Pod, 4096)
	enqueue := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok {
			queue <- pod
		}
	}
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				k.forget(pod)
			}
		},
	}); err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	for i := 0; i < 4; i++ {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case pod := <-queue:
					k.sync(ctx, pod, queue)
				}
			}
		}()
	}
	return k, nil
}

func (k *Kubelets) register(ctx context.Context, index int, name string, spec nodeSpec) error {
	labels := map[string]string{
		"kubernetes.io/hostname":           name,
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"node.kubernetes.io/instance-type": "k3s",
		"beta.kubernetes.io/os":            "linux",
		"beta.kubernetes.io/arch":          "amd64",
	}
	if index == 1 {
		// K3s labels its server node so; it does not taint it.
		labels["node-role.kubernetes.io/control-plane"] = "true"
		labels["node-role.kubernetes.io/master"] = "true"
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{
			"k3s.io/node-args": k3sNodeArgs(index, spec),
		}},
		Spec: corev1.NodeSpec{PodCIDR: fmt.Sprintf("10.42.%d.0/24", index-1), PodCIDRs: []string{fmt.Sprintf("10.42.%d.0/24", index-1)}},
	}
	created, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(spec.CPU),
		corev1.ResourceMemory:           resource.MustParse(spec.Memory),
		corev1.ResourcePods:             resource.MustParse(spec.Pods),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Capacity:    resources,
		Allocatable: resources,
		Phase:       corev1.NodeRunning,
		Conditions:  nodeConditions(now, now),
		Addresses: []corev1.NodeAddress{
			// Loopback addresses: nothing may dial a simulated node anywhere else.
			{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("127.0.1.%d", index)},
			{Type: corev1.NodeHostName, Address: name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion: kubeletVersion, KubeProxyVersion: kubeletVersion,
			ContainerRuntimeVersion: "containerd://2.1.5-k3s1", OperatingSystem: "linux", Architecture: "amd64",
			KernelVersion: "6.1.0", OSImage: "Debian GNU/Linux 12 (bookworm)",
			MachineID: name, SystemUUID: name, BootID: name,
		},
	}
	_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

func nodeConditions(heartbeat, transition metav1.Time) []corev1.NodeCondition {
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: heartbeat, LastTransitionTime: transition}
	}
	return []corev1.NodeCondition{
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
	}
}

// heartbeat renews each node's Lease every 10 s and its Ready condition every 40 s, as the
// kubelet's defaults do.
func (k *Kubelets) heartbeat(ctx context.Context) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	beats := 0
	for {
		for _, name := range k.nodes {
			if err := k.renewLease(ctx, name); err != nil && ctx.Err() == nil {
				klog.Warningf("lease of %s: %v", name, err)
			}
			if beats%4 == 0 {
				if err := k.postReady(ctx, name); err != nil && ctx.Err() == nil {
					klog.Warningf("status of %s: %v", name, err)
				}
			}
		}
		beats++
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (k *Kubelets) renewLease(ctx context.Context, name string) error {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err := k.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID,
			}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

func (k *Kubelets) postReady(ctx context.Context, name string) error {
	node, err := k.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	for i := range node.Status.Conditions {
		c := &node.Status.Conditions[i]
		c.LastHeartbeatTime = now
	}
	_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

func (k *Kubelets) ours(node string) bool {
	for _, n := range k.nodes {
		if n == node {
			return true
		}
	}
	return false
}

func (k *Kubelets) forget(pod *corev1.Pod) {
	uid := string(pod.UID)
	k.mu.Lock()
	was := k.hooked[uid]
	delete(k.hooked, uid)
	delete(k.started, uid)
	if ip, ok := k.ips[uid]; ok {
		delete(k.inUse, ip)
		delete(k.ips, uid)
	}
	k.mu.Unlock()
	if was && k.hooks != nil {
		k.hooks.PodStopped(pod)
	}
}

// sync moves one pod along as its kubelet would.
func (k *Kubelets) sync(ctx context.Context, pod *corev1.Pod, queue chan<- *corev1.Pod) {
	if !k.ours(pod.Spec.NodeName) {
		return
	}
	if pod.DeletionTimestamp != nil {
		// Containers stop at once; the kubelet then deletes the pod for good. Finalizers
		// still hold it until their controllers release them.
		k.forget(pod)
		err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
			klog.Warningf("deleting pod %s/%s: %v", pod.Namespace, pod.Name, err)
		}
		return
	}
	if pod.Status.Phase != corev1.PodPending && pod.Status.Phase != "" {
		return
	}
	uid := string(pod.UID)
	k.mu.Lock()
	already, hooked := k.started[uid], k.hooked[uid]
	k.mu.Unlock()
	if already {
		return
	}
	ip := k.sandboxIP(pod)
	if k.hooks != nil && !hooked {
		starting := pod.DeepCopy()
		starting.Status.PodIP = ip
		starting.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		if err := k.hooks.PodStarting(ctx, starting); err != nil {
			klog.Warningf("starting pod %s/%s: %v (retrying)", pod.Namespace, pod.Name, err)
			go func() {
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
					if latest, err := k.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); err == nil {
						queue <- latest
					}
				}
			}()
			return
		}
		k.mu.Lock()
		k.hooked[uid] = true
		k.mu.Unlock()
	}
	if err := k.markRunning(ctx, pod, ip); err != nil {
		if ctx.Err() == nil && !apierrors.IsNotFound(err) {
			klog.Warningf("pod %s/%s status: %v", pod.Namespace, pod.Name, err)
			go func() { time.Sleep(time.Second); queue <- pod }()
		}
		return
	}
	k.mu.Lock()
	k.started[uid] = true
	k.mu.Unlock()
}

// sandboxIP is the pod's IP, the same for every try at starting it: the node's address for a
// host-network pod, else the next free address of the node's pod CIDR (10.42.<i>.0/24), as
// K3s's host-local IPAM gives them out.
func (k *Kubelets) sandboxIP(pod *corev1.Pod) string {
	index := 0
	for i, n := range k.nodes {
		if n == pod.Spec.NodeName {
			index = i
		}
	}
	if pod.Spec.HostNetwork {
		return fmt.Sprintf("127.0.1.%d", index+1)
	}
	uid := string(pod.UID)
	k.mu.Lock()
	defer k.mu.Unlock()
	if ip, ok := k.ips[uid]; ok {
		return ip
	}
	var ip string
	for tries := 0; tries < 250; tries++ {
		k.nextIP[pod.Spec.NodeName]++
		ip = fmt.Sprintf("10.42.%d.%d", index, 1+k.nextIP[pod.Spec.NodeName]%250)
		if !k.inUse[ip] {
			break
		}
	}
	k.inUse[ip] = true
	k.ips[uid] = ip
	return ip
}

func (k *Kubelets) markRunning(ctx context.Context, pod *corev1.Pod, ip string) error {
	latest, err := k.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if latest.UID != pod.UID || latest.DeletionTimestamp != nil {
		return nil
	}
	now := metav1.Now()
	hostIP := ""
	for i, n := range k.nodes {
		if n == latest.Spec.NodeName {
			hostIP = fmt.Sprintf("127.0.1.%d", i+1)
		}
	}
	status := &latest.Status
	status.Phase = corev1.PodRunning
	status.HostIP = hostIP
	status.HostIPs = []corev1.HostIP{{IP: hostIP}}
	status.PodIP = ip
	status.PodIPs = []corev1.PodIP{{IP: ip}}
	status.StartTime = &now
	status.QOSClass = qosClass(latest)
	status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	status.InitContainerStatuses = nil
	for _, c := range latest.Spec.InitContainers {
		status.InitContainerStatuses = append(status.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true,
			ContainerID: "containerd://" + string(latest.UID) + "-" + c.Name,
			State:       corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}},
		})
	}
	status.ContainerStatuses = nil
	for _, c := range latest.Spec.Containers {
		status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr.To(true),
			ContainerID: "containerd://" + string(latest.UID) + "-" + c.Name,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, err = k.client.CoreV1().Pods(latest.Namespace).UpdateStatus(ctx, latest, metav1.UpdateOptions{})
	return err
}

func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	requests, limits := false, true
	for _, c := range pod.Spec.Containers {
		if len(c.Resources.Requests) > 0 {
			requests = true
		}
		cpuL, memL := c.Resources.Limits[corev1.ResourceCPU], c.Resources.Limits[corev1.ResourceMemory]
		cpuR, memR := c.Resources.Requests[corev1.ResourceCPU], c.Resources.Requests[corev1.ResourceMemory]
		if cpuL.IsZero() || memL.IsZero() || cpuL.Cmp(cpuR) != 0 || memL.Cmp(memR) != 0 {
			limits = false
		}
	}
	switch {
	case limits:
		return corev1.PodQOSGuaranteed
	case requests:
		return corev1.PodQOSBurstable
	default:
		return corev1.PodQOSBestEffort
	}
}

// cnitool: a minimal CNI runtime over libcni (Debian's golang-github-appc-cni-dev, 1.1.2),
// used only by the "real clients" test tier. It drives a conflist the way kubelet's
// runtimes do: libcni builds the per-plugin config, injects runtimeConfig, chains
// prevResult, caches the ADD result and hands it to CHECK and DEL.
//
// Usage: cnitool add|check|del <conflist-file> <netns-path> [ifname]
//
// Environment: CNI_PATH (plugin dirs, ':'-separated, required), CNI_ARGS ("K=V;K=V"),
// CNI_CONTAINERID (default: derived from the netns path), CNI_CACHE_DIR (default
// /var/lib/cni), CAP_ARGS (JSON object of capability args, optional).
// ADD prints the result JSON on stdout; errors go to stderr with exit status 1
// (plugin errors also print the CNI error JSON on stdout).
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cnitool add|check|del <conflist-file> <netns-path> [ifname]")
	os.Exit(2)
}

func fail(err error) {
	if e, ok := err.(*types.Error); ok {
		b, _ := json.Marshal(e)
		fmt.Println(string(b))
	}
	fmt.Fprintln(os.Stderr, "cnitool:", err)
	os.Exit(1)
}

func loadList(file string) (*libcni.NetworkConfigList, error) {
	if strings.HasSuffix(file, ".conflist") {
		return libcni.ConfListFromFile(file)
	}
	// A single .conf / .json network: wrap it in a list as runtimes do.
	conf, err := libcni.ConfFromFile(file)
	if err != nil {
		// Maybe a list without the .conflist extension.
		if list, lerr := libcni.ConfListFromFile(file); lerr == nil {
			return list, nil
		}
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}

func parseArgs(s string) ([][2]string, error) {
	var out [][2]string
	if s == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ";") {
		kv := strings.SplitN(pair, "=", 2)
		if len(kv) != 2 || kv[0] == "" {
			return nil, fmt.Errorf("invalid CNI_ARGS pair %q", pair)
		}
		out = append(out, [2]string{kv[0], kv[1]})
	}
	return out, nil
}

func main() {
	if len(os.Args) < 4 || len(os.Args) > 5 {
		usage()
	}
	cmd, file, netns := os.Args[1], os.Args[2], os.Args[3]
	ifname := "eth0"
	if len(os.Args) == 5 {
		ifname = os.Args[4]
	}
	list, err := loadList(file)
	if err != nil {
		fail(err)
	}
	cniPath := os.Getenv("CNI_PATH")
	if cniPath == "" {
		fail(fmt.Errorf("CNI_PATH is not set"))
	}
	args, err := parseArgs(os.Getenv("CNI_ARGS"))
	if err != nil {
		fail(err)
	}
	caps := map[string]interface{}{}
	if c := os.Getenv("CAP_ARGS"); c != "" {
		if err := json.Unmarshal([]byte(c), &caps); err != nil {
			fail(fmt.Errorf("CAP_ARGS: %v", err))
		}
	}
	netnsAbs, err := filepath.Abs(netns)
	if err != nil {
		fail(err)
	}
	containerID := os.Getenv("CNI_CONTAINERID")
	if containerID == "" {
		containerID = fmt.Sprintf("cnitool-%x", sha512.Sum512([]byte(netnsAbs)))[:72]
	}
	rt := &libcni.RuntimeConf{
		ContainerID:    containerID,
		NetNS:          netnsAbs,
		IfName:         ifname,
		Args:           args,
		CapabilityArgs: caps,
		CacheDir:       os.Getenv("CNI_CACHE_DIR"),
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(cniPath), rt.CacheDir, nil)
	ctx := context.Background()
	switch cmd {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		if res != nil {
			if err := res.Print(); err != nil {
				fail(err)
			}
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		usage()
	}
}

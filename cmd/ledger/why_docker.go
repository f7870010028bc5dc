package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// whyContainer is the docker container behind a docker-proxy that holds a
// port.
type whyContainer struct {
	ProxyPID      int    `json:"proxy_pid,omitempty"` // 0: published without a docker-proxy
	ContainerIP   string `json:"container_ip,omitempty"`
	ContainerPort int    `json:"container_port,omitempty"`
	// DockerAnswered says whether the docker daemon answered on its
	// socket; the name, id and image are known only when it did.
	DockerAnswered bool   `json:"docker_answered"`
	Name           string `json:"name,omitempty"`
	ID             string `json:"id,omitempty"`
	Image          string `json:"image,omitempty"`
}

func (c *whyContainer) describe() string {
	if c.ProxyPID == 0 {
		return fmt.Sprintf("%s (docker, image %s) publishes it through the firewall, without a docker-proxy", c.Name, c.Image)
	}
	fwd := ""
	if c.ContainerIP != "" {
		fwd = fmt.Sprintf(", forwarding to %s", net.JoinHostPort(c.ContainerIP, strconv.Itoa(c.ContainerPort)))
	}
	if c.Name == "" {
		why := "docker does not answer on its socket"
		if c.DockerAnswered {
			why = "docker names no container that publishes it"
		}
		return fmt.Sprintf("docker-proxy (pid %d) holds it%s; %s", c.ProxyPID, fwd, why)
	}
	return fmt.Sprintf("%s (docker, image %s), where docker-proxy (pid %d) holds it%s", c.Name, c.Image, c.ProxyPID, fwd)
}

// dockerTimeout bounds the question to the docker daemon.
const dockerTimeout = time.Second

// dockerBehind looks for a docker-proxy among the owners and, when the
// docker daemon answers on its socket, names the container that publishes
// the port. Docker is optional: without a docker-proxy it does nothing.
func dockerBehind(ctx context.Context, getenv func(string) string, port int, procs []whyProcess) *whyContainer {
	var c *whyContainer
	for _, p := range procs {
		if p.Name != "docker-proxy" && filepath.Base(strings.Fields(p.Cmdline + " x")[0]) != "docker-proxy" {
			continue
		}
		c = &whyContainer{ProxyPID: p.PID}
		args := strings.Fields(p.Cmdline)
		for i := 0; i+1 < len(args); i++ {
			switch strings.TrimLeft(args[i], "-") {
			case "container-ip":
				c.ContainerIP = args[i+1]
			case "container-port":
				c.ContainerPort, _ = strconv.Atoi(args[i+1])
			}
		}
		break
	}
	sock := dockerSocket(getenv)
	if c == nil {
		// Without its userland proxy docker publishes a port through the
		// firewall alone: nothing listens. Ask docker only where its
		// socket exists, so a machine without docker pays a stat.
		if _, err := os.Stat(sock); err != nil {
			return nil
		}
		list, err := dockerContainers(ctx, sock)
		if err != nil {
			return nil
		}
		ct, ok := publishing(list, port, "")
		if !ok {
			return nil
		}
		return &whyContainer{DockerAnswered: true, Name: strings.TrimPrefix(firstOr(ct.Names, ""), "/"), ID: shortID(ct.ID), Image: ct.Image}
	}
	list, err := dockerContainers(ctx, sock)
	if err != nil {
		return c
	}
	c.DockerAnswered = true
	if ct, ok := publishing(list, port, c.ContainerIP); ok {
		c.Name, c.ID, c.Image = strings.TrimPrefix(firstOr(ct.Names, ""), "/"), shortID(ct.ID), ct.Image
	}
	return c
}

// dockerSocket is the docker daemon's unix socket: DOCKER_HOST's when it
// names one, else the standard path.
func dockerSocket(getenv func(string) string) string {
	if h, ok := strings.CutPrefix(getenv("DOCKER_HOST"), "unix://"); ok && h != "" {
		return h
	}
	return "/var/run/docker.sock"
}

// dockerContainer is the part of docker's GET /containers/json used here.
type dockerContainer struct {
	ID    string   `json:"Id"`
	Names []string `json:"Names"`
	Image string   `json:"Image"`
	Ports []struct {
		PrivatePort int    `json:"PrivatePort"`
		PublicPort  int    `json:"PublicPort"`
		Type        string `json:"Type"`
	} `json:"Ports"`
	NetworkSettings struct {
		Networks map[string]struct {
			IPAddress string `json:"IPAddress"`
		} `json:"Networks"`
	} `json:"NetworkSettings"`
}

// dockerContainers lists the running containers through the docker
// daemon's API on its unix socket.
func dockerContainers(ctx context.Context, socket string) ([]dockerContainer, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	cl := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("docker: %s", resp.Status)
	}
	var list []dockerContainer
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	return list, nil
}

// publishing finds the container that publishes port, or failing that the
// one at the proxy's container address.
func publishing(list []dockerContainer, port int, ip string) (dockerContainer, bool) {
	for _, c := range list {
		for _, p := range c.Ports {
			if p.PublicPort == port {
				return c, true
			}
		}
	}
	for _, c := range list {
		for _, n := range c.NetworkSettings.Networks {
			if ip != "" && n.IPAddress == ip {
				return c, true
			}
		}
	}
	return dockerContainer{}, false
}

func firstOr(xs []string, def string) string {
	if len(xs) == 0 {
		return def
	}
	return xs[0]
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

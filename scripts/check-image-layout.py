#!/usr/bin/env python3
"""Checks deploy/Containerfile without building the image (no image registry is reachable here).

1. Parses the Containerfile: at least two stages; the build stage strips the binary it builds;
   the runtime stage copies exactly that binary from the build stage, creates a system user with a
   non-zero uid, runs as that user (USER), owns the data directory, declares it a VOLUME, matches
   the data directory and listen port of its ENV with VOLUME and EXPOSE, and has a HEALTHCHECK
   that requests /status.
2. Lays out the runtime stage's file system in a temp root the way the Containerfile would: the
   given binary, stripped with the build stage's own strip command (`file` must then say
   "stripped"), and every COPY from the build context.
3. Starts the binary from that root with the image's ENV, ENTRYPOINT and CMD as an unprivileged
   uid (the listen address moved to a free loopback port, paths under the temp root), runs the
   HEALTHCHECK command against it (must pass), stops it with the STOPSIGNAL (must exit 0), and runs
   the health check again (must fail now: the check can fail).

    scripts/check-image-layout.py BINARY [--containerfile deploy/Containerfile]
"""
import argparse, json, os, re, shlex, shutil, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNPRIVILEGED = 65534  # nobody: the check cannot create the image's user on the host


def fail(msg):
    sys.exit(f"check-image-layout: FAIL: {msg}")


def instructions(path):
    """[(KEYWORD, argument text)] with line continuations joined and comments dropped."""
    out, pending = [], ""
    for line in open(path):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, rest = text.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages(instrs):
    """[{'name', 'base', 'instrs'}] in order."""
    result = []
    for keyword, rest in instrs:
        if keyword == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            if not m:
                fail(f"cannot parse FROM {rest}")
            result.append({"base": m.group(1), "name": m.group(2) or str(len(result)), "instrs": []})
        elif not result:
            fail(f"{keyword} before the first FROM")
        else:
            result[-1]["instrs"].append((keyword, rest))
    return result


def exec_form(rest):
    """An exec-form (JSON array) argument, else the shell form split like /bin/sh would."""
    return json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]


def env_pairs(rest):
    return dict(kv.split("=", 1) for kv in shlex.split(rest))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--containerfile", default=os.path.join(ROOT, "deploy/Containerfile"))
    a = ap.parse_args()
    st = stages(instructions(a.containerfile))
    if len(st) < 2:
        fail(f"{len(st)} stage(s); a multi-stage build needs at least 2")
    build, runtime = st[-2], st[-1]
    run = lambda stage: [r for k, r in stage["instrs"] if k == "RUN"]
    last = lambda stage, key: next((r for k, r in reversed(stage["instrs"]) if k == key), None)

    # The runtime stage copies the build stage's binary, which the build stage stripped.
    copies_from = [r for k, r in runtime["instrs"] if k == "COPY" and r.startswith("--from=")]
    binary_copy = next((shlex.split(r) for r in copies_from if "telemetry-server" in r), None)
    if not binary_copy or binary_copy[0] != f"--from={build['name']}":
        fail(f"the runtime stage does not COPY the binary --from={build['name']}")
    built_path, image_binary = binary_copy[1], binary_copy[2]
    strip_cmd = next((c for r in run(build) for c in r.split("&&") if c.strip().startswith("strip ")), None)
    if strip_cmd is None or built_path.split("/src/", 1)[-1] not in strip_cmd:
        fail(f"the build stage does not strip {built_path}: {strip_cmd}")

    # The user: created as a system user with a fixed non-zero uid, and the one the image runs as.
    useradd = next((shlex.split(c) for r in run(runtime) for c in r.split("&&") if c.strip().startswith("useradd")), None)
    if useradd is None or "--system" not in useradd:
        fail("the runtime stage creates no system user")
    user, uid = useradd[-1], int(useradd[useradd.index("--uid") + 1])
    image_user = (last(runtime, "USER") or "root").split(":")[0]
    if uid == 0 or image_user != user:
        fail(f"runs as {image_user!r}; expected the created user {user!r} (uid {uid} must be non-zero)")

    env = {}
    for k, r in runtime["instrs"]:
        if k == "ENV":
            env.update(env_pairs(r))
    data_dir, listen = env.get("TELEMETRY_DATA_DIR"), env.get("TELEMETRY_LISTEN", "")
    volumes = json.loads(last(runtime, "VOLUME") or "[]")
    if data_dir not in volumes:
        fail(f"data dir {data_dir} is not a VOLUME ({volumes})")
    if not any(f"chown {user}:{user} {data_dir}" in r for r in run(runtime)):
        fail(f"{data_dir} is not chowned to {user}")
    port = listen.rsplit(":", 1)[-1]
    if (last(runtime, "EXPOSE") or "").split("/")[0] != port:
        fail(f"EXPOSE {last(runtime, 'EXPOSE')} differs from the listen port {port}")
    health = last(runtime, "HEALTHCHECK") or ""
    health_cmd = exec_form(health.split(" CMD ", 1)[1].strip()) if " CMD " in f" {health}" else None
    if not health_cmd or not any(f":{port}/status" in part for part in health_cmd):
        fail(f"HEALTHCHECK does not request /status on port {port}: {health}")

    # Lay out the runtime file system and strip the binary as the build stage does.
    root = tempfile.mkdtemp(prefix="image-root-")
    os.chmod(root, 0o755)
    try:
        target = root + image_binary
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(a.binary, target)
        subprocess.run(shlex.split(strip_cmd.replace(built_path.split("/src/", 1)[-1], target)), check=True)
        kind = subprocess.run(["file", "-b", target], capture_output=True, text=True, check=True).stdout
        if "ELF" not in kind or "not stripped" in kind or "stripped" not in kind:
            fail(f"binary after the build stage's strip: {kind.strip()}")
        for k, r in runtime["instrs"]:
            if k == "COPY" and not r.startswith("--from="):
                src, dest = shlex.split(r)
                os.makedirs(os.path.dirname(root + dest), exist_ok=True)
                shutil.copy(os.path.join(ROOT, src), root + dest)
        os.makedirs(root + data_dir)
        os.chown(root + data_dir, UNPRIVILEGED, UNPRIVILEGED)
        os.chmod(root + data_dir, 0o750)

        # Start it as the image would (paths under the root, a free loopback port).
        test_port = str(free_port())
        run_env = {k: (root + v if v.startswith("/") else v) for k, v in env.items()}
        run_env["TELEMETRY_LISTEN"] = f"127.0.0.1:{test_port}"
        run_env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        entry = [root + p if p.startswith("/") else p for p in json.loads(last(runtime, "ENTRYPOINT"))]
        cmd = json.loads(last(runtime, "CMD"))
        log = open(os.path.join(root, "server.log"), "w+")
        server = subprocess.Popen(entry + cmd, env=run_env, stdout=log, stderr=log,
                                  user=UNPRIVILEGED, group=UNPRIVILEGED, extra_groups=[], cwd=root)
        health_run = [p.replace(f":{port}/", f":{test_port}/") for p in health_cmd]
        try:
            deadline, ok = time.time() + 30, False
            while time.time() < deadline and server.poll() is None:
                if subprocess.run(health_run, capture_output=True).returncode == 0:
                    ok = True
                    break
                time.sleep(0.2)
            log.seek(0)
            if not ok:
                fail(f"HEALTHCHECK {health_run} never passed; server log:\n{log.read()}")
            stop = getattr(signal, last(runtime, "STOPSIGNAL") or "SIGTERM")
            server.send_signal(stop)
            code = server.wait(timeout=60)
            if code != 0:
                log.seek(0)
                fail(f"server exited {code} on {stop.name}; log:\n{log.read()}")
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        if subprocess.run(health_run, capture_output=True).returncode == 0:
            fail("HEALTHCHECK passes with the server stopped")
        print(f"check-image-layout: ok: {len(st)} stages, user {user} (uid {uid}), {image_binary} "
              f"({kind.split(',')[0]}, stripped), VOLUME {data_dir}, HEALTHCHECK {' '.join(health_cmd)} "
              f"passed while serving as uid {UNPRIVILEGED} and failed once stopped")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

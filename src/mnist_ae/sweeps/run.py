"""What runs a plan's experiments: DVC's local queue on one machine, or one job per experiment on
many (a CI matrix, a Slurm array), each pushing its experiment, and a gather that pulls them back.

The many-machine pattern is DVC's own (``dvc exp run``, ``dvc exp push``, ``dvc exp pull``): every
job checks out the plan's baseline commit, runs its one experiment under the plan's name, pushes
its outputs to the DVC remote and then the experiment's git ref (``refs/exps/...``) to the git
remote. A ref on the git remote is the record that an experiment is done, outputs and all (the ref
goes last): a retry finds it and does nothing, a job killed midway pushed no ref, and the gather
names every planned experiment without one.
"""

from __future__ import annotations

import subprocess
import sys
import time

from ..core.errors import UserError
from .plan import Plan, Planned

EXPERIMENT_REFS = "refs/exps"  # where DVC keeps experiments: refs/exps/<baseline[:2]>/<baseline[2:]>/<name>
POLL_S = 10
# The longest a plan's experiments may take in the local queue before a wait gives up: a sweep
# longer than a day on one machine is a job array's.
QUEUE_WAIT_S = 24 * 3600


def dvc(*args: str, capture: bool = True) -> str:
    """Run ``dvc ARGS``; its output (``capture=False``: shown as it goes), or a one-line error."""
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=capture, text=True)
    if result.returncode != 0:
        lines = ((result.stderr or "") + (result.stdout or "")).strip().splitlines() if capture else []
        raise UserError(f"dvc {' '.join(args[:2])} failed (exit {result.returncode})"
                        + (f": {lines[-1]}" if lines else ": its output is above"))
    return result.stdout or ""


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"git {' '.join(args[:2])} failed: {said}")
    return result.stdout.strip()


# --- one machine: DVC's queue -------------------------------------------------------------------


def queued_or_done() -> set[str]:
    """Names of HEAD's finished experiments, and of those queued or running. ``dvc queue status``
    keeps its finished tasks of every commit: only its Queued and Running rows count here."""
    names = set(dvc("exp", "list", "--names-only").split())
    for line in dvc("queue", "status").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[-1] in ("Queued", "Running"):
            names.add(fields[1])
    return names


def queue(plan: Plan, jobs: int) -> list[Planned]:
    """Queue every experiment of the plan that HEAD has not finished or queued, and start ``jobs``
    workers (they run in the background: ``dvc queue status``); returns what was queued."""
    have = queued_or_done()
    todo = [planned for planned in plan.experiments if planned.name not in have]
    for planned in todo:
        dvc("exp", "run", "--queue", *planned.dvc_args())
    if todo:
        # Not through dvc(): the workers it leaves running hold a captured pipe open, and the call would never return.
        subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
    return todo


def wait_for(plan: Plan, timeout_s: float = QUEUE_WAIT_S) -> None:
    """Wait until none of the plan's experiments is queued or running, at most ``timeout_s``."""
    names = {planned.name for planned in plan.experiments}
    deadline = time.monotonic() + timeout_s
    while any(len(f := line.split()) >= 3 and f[1] in names and f[-1] in ("Queued", "Running")
              for line in dvc("queue", "status").splitlines()[1:]):
        if time.monotonic() > deadline:
            raise UserError(f"the plan's experiments are still running after {timeout_s / 3600:.1f} hours: see "
                            "dvc queue status; rerun once they are done")
        time.sleep(POLL_S)


# --- many machines: one job per experiment, then a gather ---------------------------------------


def resolve(rev: str) -> str:
    """The full hash of the commit ``rev`` names."""
    return git("rev-parse", "--verify", f"{rev}^{{commit}}")


def experiment_ref(baseline: str, name: str) -> str:
    return f"{EXPERIMENT_REFS}/{baseline[:2]}/{baseline[2:]}/{name}"


def pushed(remote: str, baseline: str) -> dict[str, str]:
    """The experiments of ``baseline`` on the git remote: name -> the ref's commit."""
    listed = git("ls-remote", remote, f"{EXPERIMENT_REFS}/{baseline[:2]}/{baseline[2:]}/*")
    return {ref.rsplit("/", 1)[-1]: sha for sha, ref in (line.split() for line in listed.splitlines())}


def _with_git_identity() -> None:
    """DVC commits each experiment: a fresh machine's clone may have no identity to commit with."""
    for key, value in (("user.name", "mnist-ae sweep job"), ("user.email", "sweep-job@localhost")):
        if subprocess.run(["git", "config", key], capture_output=True).returncode != 0:
            git("config", key, value)


def run_job(plan: Plan, index: int, baseline: str, remote: str) -> str:
    """Job ``index`` of the plan: run its experiment at ``baseline`` and push it, unless the git
    remote has it already; returns what it did, in one line."""
    if not 0 <= index < len(plan.experiments):
        raise UserError(f"--index {index}: the plan has jobs 0-{len(plan.experiments) - 1}")
    planned, commit = plan.experiments[index], resolve(baseline)
    head = resolve("HEAD")
    if head != commit:
        raise UserError(f"job {index} ({planned.name}): HEAD is {head[:12]}, not the plan's baseline {commit[:12]}: "
                        f"check out {commit[:12]} (with its full history: no shallow clone)")
    if planned.name in pushed(remote, commit):
        return f"job {index}: {planned.name} is on {remote} already: nothing to do"
    _with_git_identity()
    print(f"job {index}: running {planned.name}: {' '.join(planned.overrides)}", flush=True)
    try:
        dvc("exp", "run", *planned.dvc_args(), capture=False)
        # The outputs first, then the ref: dvc exp push sends the ref before the cache, and a job cut
        # off between the two would leave a ref that says "done" for outputs nobody has.
        dvc("push", capture=False)
        # dvc exp push says "diverged" and still exits 0 when the remote has another experiment of
        # that name: the check below, not its exit code, says whether it landed.
        dvc("exp", "push", "--no-cache", remote, planned.name, capture=False)
    except UserError as error:
        raise UserError(f"job {index} ({planned.name}) failed: {error}") from None
    local = git("rev-parse", experiment_ref(commit, planned.name))
    if pushed(remote, commit).get(planned.name) != local:
        raise UserError(f"job {index} ({planned.name}) ran, but {remote} does not hold its ref "
                        f"{experiment_ref(commit, planned.name)} at {local[:12]}: rerun the job")
    return f"job {index}: {planned.name} done and pushed to {remote}"


def pull(plan: Plan, baseline: str, remote: str) -> list[str]:
    """Pull every experiment of the plan the git remote has (refs and outputs); returns the names of
    the planned experiments it does not have, in the plan's order."""
    commit = resolve(baseline)
    there = pushed(remote, commit)
    names = [planned.name for planned in plan.experiments if planned.name in there]
    if names:
        dvc("exp", "pull", remote, *names)
    return [planned.name for planned in plan.experiments if planned.name not in there]

"""Who a batch job is for, in fields Slurm keeps, and each tier's own scheduling.

Every batch job runs under the gateway's service account, so without help
``sacct`` and ``sreport`` cannot tell which gateway user or tier used an
allocation. :func:`sbatch_accounting_args` builds the sbatch options that
say it:

- ``--comment=qcos tier=<tier> users=<user ids> jobs=<job ids>``: ``sacct
  --format=JobID,Comment%200`` shows it (slurmdbd stores it with
  ``AccountingStoreFlags=job_comment``; ``scontrol show job`` always shows
  it). Bounded to :data:`MAX_COMMENT_LENGTH` characters: ids that do not fit
  are counted, ``(+12 more)``; the gateway's own database has the full list.
- ``--wckey=<tier>``: ``sacct --format=JobID,WCKey`` and ``sreport``'s
  ``wckey`` reports group usage by tier (with ``TrackWCKey=yes`` in
  slurm.conf; Slurm ignores it otherwise).
- the tier's ``--account``, ``--qos`` and ``--nice`` (:class:`TierScheduling`),
  when set.

Options given to sbatch on its command line override the script's
``#SBATCH`` lines, so these can be added to any rendered script. Every value
is checked against a strict pattern; nothing here runs a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    from hpc_jobs.profiles import ClusterProfile

__all__ = ["MAX_COMMENT_LENGTH", "AccountingError", "TierScheduling", "check_against_profile",
           "sbatch_accounting_args", "sbatch_comment"]

#: Longest ``--comment`` built here, in characters (Slurm keeps longer ones;
#: this keeps ``squeue``/``sacct`` output and the database rows small).
MAX_COMMENT_LENGTH = 1000
#: Slurm names (account, QOS, partition, wckey): letters, digits, ``_ . -``, not starting with ``-``.
SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Gateway job ids and user ids, as the API allows them.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: ``--nice`` takes -2147483645 … 2147483645; negative values need a Slurm operator.
MAX_NICE = 2147483645


class AccountingError(ValueError):
    """A tier's scheduling setting or an id that cannot go into an sbatch option."""


@dataclass(frozen=True)
class TierScheduling:
    """A tier's own Slurm settings, all optional (``deploy/tiers.toml``,
    ``[tier.slurm]``).

    ``account``: ``--account`` for the tier's jobs, instead of the cluster
    profile's. ``qos``: ``--qos``. ``partitions``: partition names sizing
    tries first, in order, before the profile's own order. ``nice``:
    ``--nice`` (positive lowers the tier's priority; negative raises it and
    needs the gateway's Slurm user to be an operator); 0: unset.
    """

    account: str = ""
    qos: str = ""
    partitions: tuple[str, ...] = ()
    nice: int = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], *, where: str = "tier") -> "TierScheduling":
        """Build and validate from a TOML table (keys ``account``, ``qos``,
        ``partitions``, ``nice``). Raises :class:`AccountingError` naming ``where``."""
        if not isinstance(data, Mapping):
            raise AccountingError(f"{where}: slurm must be a table of account, qos, partitions, nice")
        unknown = set(data) - {"account", "qos", "partitions", "nice"}
        if unknown:
            raise AccountingError(f"{where}: unknown slurm setting(s) {', '.join(sorted(unknown))}; "
                                  "known: account, qos, partitions, nice")
        partitions = data.get("partitions", ())
        if isinstance(partitions, str) or not isinstance(partitions, (list, tuple)):
            raise AccountingError(f"{where}: slurm.partitions must be a list of partition names")
        nice = data.get("nice", 0)
        if isinstance(nice, bool) or not isinstance(nice, int):
            raise AccountingError(f"{where}: slurm.nice must be a whole number")
        scheduling = cls(account=str(data.get("account", "")), qos=str(data.get("qos", "")),
                         partitions=tuple(str(p) for p in partitions), nice=nice)
        scheduling.validate(where)
        return scheduling

    def validate(self, where: str = "tier") -> None:
        """Raise :class:`AccountingError` for a value Slurm would not take as one option."""
        for name, value in (("account", self.account), ("qos", self.qos)):
            if value and not SLURM_NAME.fullmatch(value):
                raise AccountingError(f"{where}: slurm.{name} {value!r} is not a Slurm name "
                                      "(letters, digits, _ . -, at most 64)")
        for partition in self.partitions:
            if not SLURM_NAME.fullmatch(partition):
                raise AccountingError(f"{where}: slurm.partitions holds {partition!r}, not a Slurm name")
        if len(set(self.partitions)) != len(self.partitions):
            raise AccountingError(f"{where}: slurm.partitions names a partition twice")
        if not -MAX_NICE <= self.nice <= MAX_NICE:
            raise AccountingError(f"{where}: slurm.nice must be within ±{MAX_NICE}")


def check_against_profile(scheduling: TierScheduling, profile: "ClusterProfile", *, where: str = "tier") -> None:
    """Raise :class:`AccountingError` when the tier names a partition the
    cluster profile does not have, or an account its ``account_pattern``
    refuses (LUMI: ``project_<id>``)."""
    import re

    known = {partition.name for partition in profile.partitions}
    for partition in scheduling.partitions:
        if partition not in known:
            raise AccountingError(f"{where}: slurm.partitions names {partition!r}, which profile {profile.name} "
                                  f"does not have (it has: {', '.join(sorted(known)) or 'none'})")
    pattern = profile.slurm.account_pattern
    if scheduling.account and pattern and not re.fullmatch(pattern, scheduling.account):
        raise AccountingError(f"{where}: slurm.account {scheduling.account!r} does not match profile "
                              f"{profile.name}'s account_pattern {pattern!r}")


def _checked_ids(ids: Iterable[str], what: str) -> list[str]:
    unique = list(dict.fromkeys(ids))
    for value in unique:
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise AccountingError(f"{what} {value!r} cannot go into a Slurm comment")
    return unique


def _bounded(prefix: str, ids: list[str], room: int) -> str:
    """``prefix`` + as many ``ids`` (comma-separated) as fit in ``room``
    characters, then ``(+N more)`` for the rest; ``""`` when not even that fits."""
    text = prefix + ",".join(ids)
    if len(text) <= room:
        return text
    kept, length = 0, len(prefix)
    for index, value in enumerate(ids):
        grown = length + len(value) + (1 if index else 0)
        if grown + len(f"(+{len(ids) - index - 1} more)") > room:
            break
        kept, length = index + 1, grown
    text = prefix + ",".join(ids[:kept]) + f"(+{len(ids) - kept} more)"
    return text if len(text) <= room else ""


def sbatch_comment(*, tier: str, user_ids: Sequence[str], job_ids: Sequence[str],
                   max_length: int = MAX_COMMENT_LENGTH) -> str:
    """``qcos tier=pro users=user_a,user_b jobs=j1,j2,j3``, at most
    ``max_length`` characters (users first: there are fewer; ids beyond the
    bound are counted as ``(+N more)``). Duplicates are dropped, order kept.
    Raises :class:`AccountingError` for an id or tier outside the safe
    character set, or a ``max_length`` too short for the tier."""
    if not SLURM_NAME.fullmatch(tier):
        raise AccountingError(f"tier {tier!r} cannot go into a Slurm comment")
    users = _checked_ids(user_ids, "user id")
    jobs = _checked_ids(job_ids, "job id")
    head = f"qcos tier={tier}"
    if len(head) > max_length:
        raise AccountingError(f"a comment of {max_length} characters cannot hold the tier")
    # Leave room for at least the count of the jobs.
    user_part = _bounded(" users=", users, max_length - len(head) - len(f" jobs=(+{len(jobs)} more)"))
    job_part = _bounded(" jobs=", jobs, max_length - len(head) - len(user_part))
    return head + user_part + job_part


def sbatch_accounting_args(*, tier: str, scheduling: TierScheduling | None = None,
                           user_ids: Sequence[str], job_ids: Sequence[str],
                           max_comment_length: int = MAX_COMMENT_LENGTH) -> list[str]:
    """The sbatch options of one batch job (a pack of one tier's jobs), each one
    argv element: ``--comment``, ``--wckey=<tier>``, then the tier's
    ``--account``, ``--qos`` and ``--nice`` when set.

    ``user_ids``/``job_ids``: the gateway users and job ids the batch job
    runs (a single job: one of each). Raises :class:`AccountingError` for an
    unsafe value. Pure: pass the result as extra sbatch arguments (they
    override ``#SBATCH`` lines of the script).
    """
    scheduling = scheduling or TierScheduling()
    scheduling.validate(f"tier {tier}")
    comment = sbatch_comment(tier=tier, user_ids=user_ids, job_ids=job_ids, max_length=max_comment_length)
    args = [f"--comment={comment}", f"--wckey={tier}"]
    if scheduling.account:
        args.append(f"--account={scheduling.account}")
    if scheduling.qos:
        args.append(f"--qos={scheduling.qos}")
    if scheduling.nice:
        args.append(f"--nice={scheduling.nice}")
    return args

"""Audit a plan against a profile: one finding per control hit, worst first, each with where it comes from in
the config, the plan ops that do it, what it grants and why it matters."""

import json
from dataclasses import asdict, dataclass

from mrunc.review.controls import BY_ID, SEVERITIES
from mrunc.review.facts import Model
from mrunc.review.inputs import Subject, existing_pointer
from mrunc.review.profiles import Profile


@dataclass(frozen=True)
class Finding:
    control: str
    severity: str
    title: str
    pointer: str  # exists in the config (when at hand): the field, or its nearest present parent
    absent: str | None  # the rest of the field's pointer, when the config leaves it out
    ops: list[int]
    grants: str
    why: str
    waived: str | None  # the profile's reason, when waived


@dataclass
class Report:
    input: str
    config: str
    profile: str
    findings: list[Finding]
    controls: list[str]  # every control the profile checks, found or not
    config_file: str | None = None
    config_text: str | None = None

    @property
    def met(self) -> bool:
        return not any(f.waived is None for f in self.findings)


def audit(subject: Subject, profile: Profile) -> Report:
    model = Model(subject.plan)
    found = []
    for order, control_id in enumerate(profile.controls):
        control = BY_ID[control_id]
        for hit in control.check(model):
            pointer = existing_pointer(subject.config, hit.pointer)
            finding = Finding(control.id, hit.severity or control.severity, control.title, pointer,
                              hit.pointer[len(pointer):].strip("/") or None, list(hit.ops), hit.grants, control.why,
                              profile.waived.get(control.id))
            found.append(((SEVERITIES.index(finding.severity), order, hit.rank, finding.pointer), finding))
    findings = [f for _, f in sorted(found, key=lambda pair: pair[0])]
    return Report(subject.path, subject.note, profile.name, findings, list(profile.controls), subject.config_file,
                  subject.config_text)


def render(report: Report, fmt: str) -> str:
    if fmt == "sarif":
        from mrunc.review.sarif import sarif

        return sarif(report)
    return {"text": _text, "json": _json, "markdown": _markdown}[fmt](report)


def _verdict(report: Report) -> str:
    waived = sum(1 for f in report.findings if f.waived is not None)
    status = "met" if report.met else "VIOLATED"
    count = f"{len(report.findings)} finding{'' if len(report.findings) == 1 else 's'}"
    return f"profile {report.profile}: {status} ({count}, {waived} waived)"


def _ops(ops: list[int]) -> str:
    return "ops " + ", ".join(map(str, ops)) if ops else "no op (absent from the plan)"


def _where(f: Finding) -> str:
    return f.pointer + (f" ({f.absent} absent)" if f.absent else "")


def _text(report: Report) -> str:
    lines = [f"audit of {report.input} ({report.config})", _verdict(report)]
    for f in report.findings:
        lines += ["", f"[{f.severity}] {f.control}: {f.title}" + (f"  (waived: {f.waived})" if f.waived else ""),
                  f"  where:  {_where(f)}  {_ops(f.ops)}", f"  grants: {f.grants}", f"  why:    {f.why}"]
    return "\n".join(lines) + "\n"


def _json(report: Report) -> str:
    data = {"input": report.input, "config": report.config, "profile": report.profile, "met": report.met,
            "findings": [asdict(f) for f in report.findings]}
    return json.dumps(data, indent=1) + "\n"


def _markdown(report: Report) -> str:
    lines = [f"### mrunc audit: `{report.input}`", "", f"{_verdict(report)}; {report.config}.", ""]
    if report.findings:
        lines += ["| Severity | Control | Config | Plan ops | Grants | Why |", "|---|---|---|---|---|---|"]
        for f in report.findings:
            control = f"`{f.control}`" + (f" (waived: {f.waived})" if f.waived else "")
            lines.append(f"| {f.severity} | {control} | {_cell(_where(f))} | {', '.join(map(str, f.ops)) or '-'} | "
                         f"{_cell(f.grants)} | {_cell(f.why)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")

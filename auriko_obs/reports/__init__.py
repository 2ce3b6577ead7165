"""Spend reports: build one for a period, render it (HTML, Markdown, CSV, JSON), deliver it (file, webhook,
email), on a schedule and once per period; and budget checks for monitoring.

    from auriko_obs.reports import ReportSpec, run_report
    run_report(ReportSpec(db="spend.duckdb", period="week", format="html", to=["file"], out="week.html"))
"""

from ._anomalies import find_anomalies, robust_z
from ._budget_verdicts import budget_rows, check_budgets
from ._data import build_report
from ._deliver import DeliveryError, Retry, SmtpSettings
from ._periods import Period, current_period, report_period
from ._render import render, summary_text
from ._run import ReportSpec, run_report

__all__ = [
    "DeliveryError",
    "Period",
    "ReportSpec",
    "Retry",
    "SmtpSettings",
    "budget_rows",
    "build_report",
    "check_budgets",
    "current_period",
    "find_anomalies",
    "render",
    "report_period",
    "robust_z",
    "run_report",
    "summary_text",
]

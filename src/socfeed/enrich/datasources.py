"""Notes on what must be collected or enabled for each data source a rule reads.

Parsers fill notes when the file itself names the collection (a Sentinel rule's
requiredDataConnectors, a Splunk data source definition). This module writes a note for
every data source still without one, from the Sigma log source taxonomy and Elastic's
integration and index names.
"""

from __future__ import annotations

from socfeed.model import DataSource, Rule

# Sigma log source categories -> the log that usually feeds them on Windows. Event ids are
# those of Sysmon's schema and of the Windows Security and PowerShell channels.
_SIGMA_WINDOWS_CATEGORIES = {
    "process_creation": "Sysmon Event ID 1, or Security Event ID 4688 with command-line "
    "auditing enabled",
    "file_change": "Sysmon Event ID 2 (file creation time changed)",
    "network_connection": "Sysmon Event ID 3",
    "sysmon_status": "Sysmon Event IDs 4 and 16",
    "process_termination": "Sysmon Event ID 5",
    "driver_load": "Sysmon Event ID 6",
    "image_load": "Sysmon Event ID 7 (image loading must be enabled in the Sysmon config)",
    "create_remote_thread": "Sysmon Event ID 8",
    "raw_access_thread": "Sysmon Event ID 9",
    "process_access": "Sysmon Event ID 10",
    "file_event": "Sysmon Event ID 11",
    "registry_add": "Sysmon Event ID 12",
    "registry_delete": "Sysmon Event ID 12",
    "registry_set": "Sysmon Event ID 13",
    "registry_rename": "Sysmon Event ID 14",
    "registry_event": "Sysmon Event IDs 12, 13 and 14",
    "create_stream_hash": "Sysmon Event ID 15",
    "pipe_created": "Sysmon Event IDs 17 and 18",
    "wmi_event": "Sysmon Event IDs 19, 20 and 21",
    "dns_query": "Sysmon Event ID 22",
    "file_delete": "Sysmon Event IDs 23 and 26",
    "clipboard_capture": "Sysmon Event ID 24",
    "process_tampering": "Sysmon Event ID 25",
    "file_block_executable": "Sysmon Event ID 27",
    "file_block_shredding": "Sysmon Event ID 28",
    "file_executable_detected": "Sysmon Event ID 29",
    "ps_module": "PowerShell module logging (Event ID 4103), enabled by Group Policy",
    "ps_script": "PowerShell script block logging (Event ID 4104), enabled by Group Policy",
    "ps_classic_start": "the Windows PowerShell classic log, Event ID 400",
    "ps_classic_provider_start": "the Windows PowerShell classic log, Event ID 600",
    "ps_classic_script": "the Windows PowerShell classic log, Event ID 800",
    "file_access": "the Microsoft-Windows-Kernel-File ETW provider (not Sysmon)",
    "file_rename": "the Microsoft-Windows-Kernel-File ETW provider (not Sysmon)",
}

_SIGMA_WINDOWS_SERVICES = {
    "security": "the Windows Security event log, with the audit policy subcategory the rule "
    "needs enabled",
    "system": "the Windows System event log",
    "application": "the Windows Application event log",
    "sysmon": "Microsoft-Windows-Sysmon/Operational (Sysmon installed with a config)",
    "powershell": "Microsoft-Windows-PowerShell/Operational",
    "powershell-classic": "the Windows PowerShell classic log",
    "windefend": "Microsoft-Windows-Windows Defender/Operational",
    "taskscheduler": "Microsoft-Windows-TaskScheduler/Operational (disabled by default)",
    "wmi": "Microsoft-Windows-WMI-Activity/Operational",
    "dns-server": "the DNS Server event log on the DNS servers",
    "bits-client": "Microsoft-Windows-Bits-Client/Operational",
    "codeintegrity-operational": "Microsoft-Windows-CodeIntegrity/Operational",
    "firewall-as": "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",
    "ntlm": "Microsoft-Windows-NTLM/Operational (NTLM auditing enabled by Group Policy)",
    "applocker": "the Microsoft-Windows-AppLocker logs",
}

_SIGMA_PRODUCTS = {
    "linux": "auditd or Sysmon for Linux on the hosts",
    "macos": "macOS Endpoint Security events from an EDR or the unified log",
    "aws": "AWS CloudTrail delivered to the SIEM",
    "azure": "Azure / Entra ID logs (activity, sign-in or audit logs) exported to the SIEM",
    "gcp": "Google Cloud audit logs exported to the SIEM",
    "m365": "the Microsoft 365 unified audit log",
    "okta": "the Okta System Log",
    "github": "the GitHub audit log",
    "zeek": "Zeek logs from a network sensor",
    "kubernetes": "the Kubernetes API server audit log",
}

_ELASTIC_INTEGRATIONS = {
    "endpoint": "Elastic Defend installed on the hosts (logs-endpoint.* data streams)",
    "windows": "the Elastic Agent Windows integration (Sysmon and PowerShell channels)",
    "system": "the Elastic Agent System integration (Windows Security and Linux auth logs)",
    "sysmon_linux": "the Sysmon for Linux integration",
    "auditd_manager": "the Auditd Manager integration with audit rules for the behaviour",
    "aws": "the AWS integration collecting CloudTrail",
    "azure": "the Azure Logs integration (activity, sign-in and audit logs)",
    "o365": "the Microsoft 365 integration (unified audit log)",
    "okta": "the Okta integration (System Log)",
    "gcp": "the Google Cloud Platform integration (audit logs)",
    "network_traffic": "the Network Packet Capture integration",
    "m365_defender": "the Microsoft Defender XDR integration",
    "crowdstrike": "the CrowdStrike integration (Falcon events)",
    "sentinel_one": "the SentinelOne integration",
    "google_workspace": "the Google Workspace integration",
    "kubernetes": "the Kubernetes integration with audit logs enabled",
}


def fill_notes(rule: Rule) -> None:
    """Write a note on every data source of the rule that has none."""
    for source in rule.data_sources:
        if not source.note:
            source.note = note_for(source)


def note_for(source: DataSource) -> str:
    """Return what must be collected for a data source, by its kind."""
    if source.kind == "logsource":
        return _sigma_note(source)
    if source.kind == "integration":
        return _integration_note(source.name)
    if source.kind == "index":
        return _index_note(source.name)
    if source.kind == "table":
        return f"Collect the data that fills the {source.name} table in the workspace."
    return f"Collect {source.name} in the SIEM the rule runs on."


def _sigma_note(source: DataSource) -> str:
    product = str(source.details.get("product") or "").lower()
    category = str(source.details.get("category") or "").lower()
    service = str(source.details.get("service") or "").lower()
    parts: list[str] = []
    if product == "windows" and category in _SIGMA_WINDOWS_CATEGORIES:
        parts.append(f"Usually {_SIGMA_WINDOWS_CATEGORIES[category]}.")
    elif category:
        parts.append(f"Events of the Sigma category {category}.")
    if product == "windows" and service in _SIGMA_WINDOWS_SERVICES:
        parts.append(f"Collect {_SIGMA_WINDOWS_SERVICES[service]}.")
    elif service:
        parts.append(f"Collect the {service} log.")
    if product in _SIGMA_PRODUCTS:
        parts.append(f"Source: {_SIGMA_PRODUCTS[product]}.")
    parts.append("Convert the rule with a Sigma backend and processing pipeline for your SIEM.")
    return " ".join(parts)


def _integration_note(name: str) -> str:
    package = name.split(".", 1)[0].lower()
    known = _ELASTIC_INTEGRATIONS.get(package)
    if known:
        return f"Requires {known}."
    return f"Requires the Elastic Agent integration {name!r} sending its data streams."


def _index_note(pattern: str) -> str:
    lowered = pattern.lower()
    if lowered.startswith("logs-endpoint"):
        return f"Index {pattern}: written by Elastic Defend."
    for beat in ("winlogbeat", "auditbeat", "filebeat", "packetbeat", "metricbeat"):
        if lowered.startswith(beat):
            return f"Index {pattern}: written by {beat.capitalize()}."
    if lowered.startswith("logs-"):
        dataset = lowered.removeprefix("logs-").rstrip("*-")
        return f"Index {pattern}: data streams of the Elastic Agent integration {dataset}."
    return f"Index {pattern} must exist and be searchable by the rule."

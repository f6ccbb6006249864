"""Turn what a query reads into DataSource entries that state what must be enabled.

A table's note comes, in order of preference, from the rule's own
``requiredDataConnectors`` (the Sentinel connectors that list the table in
``dataTypes``), from the known-table list below, or from a plain sentence naming the
table. The connector ids of the list are the ones Azure-Sentinel rules write in
``requiredDataConnectors``. NOTE: CefAma, SyslogAma, ASimDnsActivityLogs,
MicrosoftCloudAppSecurity and the threat intelligence ids were not checked against a
connector definition file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from socfeed.kql.tables import QuerySources, SourceRef
from socfeed.model import DataSource

QUERY_ORIGIN = "derived: read from the KQL query"


@dataclass(frozen=True)
class RequiredConnector:
    """One ``requiredDataConnectors`` entry of a Sentinel rule."""

    connector_id: str
    data_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Product:
    connector: str  # display name
    connector_id: str  # "" when data arrives without a Sentinel data connector
    tables: tuple[str, ...]
    setting: str = ""  # what the connector must collect, if anything
    extra: str = ""  # a second clause, if any


_XDR_NOTE = "Defender XDR advanced hunting has it without a connector"

_PRODUCTS: tuple[_Product, ...] = (
    _Product(
        "Microsoft Entra ID",
        "AzureActiveDirectory",
        (
            "SigninLogs",
            "AADNonInteractiveUserSignInLogs",
            "AADServicePrincipalSignInLogs",
            "AADManagedIdentitySignInLogs",
            "AuditLogs",
            "AADProvisioningLogs",
            "MicrosoftGraphActivityLogs",
        ),
        setting="the log category of this table",
    ),
    _Product(
        "Microsoft Entra ID",
        "AzureActiveDirectory",
        (
            "AADRiskyUsers",
            "AADUserRiskEvents",
            "AADRiskyServicePrincipals",
            "AADServicePrincipalRiskEvents",
        ),
        setting="the log category of this table",
        extra="Identity Protection risk data needs Microsoft Entra ID P2",
    ),
    _Product(
        "Microsoft Entra ID",
        "AzureActiveDirectory",
        ("ADFSSignInLogs",),
        setting="AD FS sign-in logs",
        extra="they need Microsoft Entra Connect Health for AD FS",
    ),
    _Product(
        "Microsoft Defender XDR",
        "MicrosoftThreatProtection",
        (
            "DeviceProcessEvents",
            "DeviceNetworkEvents",
            "DeviceFileEvents",
            "DeviceRegistryEvents",
            "DeviceLogonEvents",
            "DeviceImageLoadEvents",
            "DeviceEvents",
            "DeviceFileCertificateInfo",
            "DeviceInfo",
            "DeviceNetworkInfo",
        ),
        setting="the Microsoft Defender for Endpoint event tables",
        extra=_XDR_NOTE,
    ),
    _Product(
        "Microsoft Defender XDR",
        "MicrosoftThreatProtection",
        (
            "EmailEvents",
            "EmailAttachmentInfo",
            "EmailUrlInfo",
            "EmailPostDeliveryEvents",
            "UrlClickEvents",
        ),
        setting="the Microsoft Defender for Office 365 event tables",
        extra=_XDR_NOTE,
    ),
    _Product(
        "Microsoft Defender XDR",
        "MicrosoftThreatProtection",
        ("IdentityLogonEvents", "IdentityQueryEvents", "IdentityDirectoryEvents"),
        setting="the Microsoft Defender for Identity event tables",
        extra=_XDR_NOTE,
    ),
    _Product(
        "Microsoft Defender XDR",
        "MicrosoftThreatProtection",
        ("CloudAppEvents",),
        setting="the Microsoft Defender for Cloud Apps event table",
        extra=_XDR_NOTE,
    ),
    _Product(
        "Microsoft Defender XDR",
        "MicrosoftThreatProtection",
        ("AlertInfo", "AlertEvidence"),
        setting="the Defender XDR alert tables",
        extra=_XDR_NOTE,
    ),
    _Product(
        "Windows Security Events via AMA",
        "WindowsSecurityEvents",
        ("SecurityEvent",),
        setting="a data collection rule that collects the event IDs the query filters on",
        extra="the older connector for the legacy agent is SecurityEvents",
    ),
    _Product("Windows Forwarded Events", "WindowsForwardedEvents", ("WindowsEvent",)),
    _Product("Syslog via AMA", "SyslogAma", ("Syslog",), setting="the facilities the query reads"),
    _Product(
        "Common Event Format (CEF) via AMA",
        "CefAma",
        ("CommonSecurityLog",),
        setting="the appliance that sends the events",
        extra="vendor solutions ship their own CEF connectors for the same table",
    ),
    _Product(
        "Microsoft 365", "Office365", ("OfficeActivity",), setting="Exchange, SharePoint or Teams"
    ),
    _Product(
        "Azure Activity", "AzureActivity", ("AzureActivity",), setting="the subscriptions to watch"
    ),
    _Product("Amazon Web Services", "AWS", ("AWSCloudTrail",), extra="AWSS3 also writes it"),
    _Product("Amazon Web Services S3", "AWSS3", ("AWSVPCFlow", "AWSGuardDuty", "AWSCloudWatch")),
    _Product("DNS (legacy agent)", "DNS", ("DnsEvents", "DnsInventory")),
    _Product("Windows DNS Events via AMA", "ASimDnsActivityLogs", ("ASimDnsActivityLogs",)),
    _Product("Windows Firewall", "WindowsFirewall", ("WindowsFirewall",)),
    _Product(
        "VM insights with the Dependency agent", "AzureMonitor(VMInsights)", ("VMConnection",)
    ),
    _Product("IIS logs collected by the Azure Monitor Agent", "AzureMonitor(IIS)", ("W3CIISLog",)),
    _Product(
        "Microsoft Defender for Cloud Apps",
        "MicrosoftCloudAppSecurity",
        ("McasShadowItReporting",),
        setting="Cloud Discovery logs",
    ),
    _Product(
        "a threat intelligence connector",
        "",
        ("ThreatIntelligenceIndicator", "ThreatIntelIndicators", "ThreatIntelObjects"),
        extra="for example ThreatIntelligenceTaxii or MicrosoftDefenderThreatIntelligence",
    ),
)

# Tables that no data connector writes, with what writes them instead.
_OTHER_TABLES = {
    "Event": "collect the Windows event logs the query reads (for example Sysmon) with an "
    "Azure Monitor Agent data collection rule",
    "Heartbeat": "written by every agent that reports to the workspace",
    "AzureDiagnostics": "send the Azure resource's diagnostic logs (for example Azure Firewall "
    "or Key Vault) to the workspace in Azure diagnostics mode",
    "AzureMetrics": "send the Azure resource's metrics to the workspace in its diagnostic settings",
    "SecurityAlert": "written by the connectors of alert-producing products and by analytics rules",
    "SecurityIncident": "written by Microsoft Sentinel itself",
    "BehaviorAnalytics": "enable User and Entity Behavior Analytics (UEBA) in Microsoft Sentinel",
    "UserPeerAnalytics": "enable User and Entity Behavior Analytics (UEBA) in Microsoft Sentinel",
    "IdentityInfo": "enable UEBA in Microsoft Sentinel; Defender XDR advanced hunting has it too",
    "Anomalies": "written by the anomaly analytics rules of Microsoft Sentinel",
    "Watchlist": "written by Microsoft Sentinel for its watchlists",
    "LAQueryLogs": "enable query auditing in the diagnostic settings of the workspace",
    "SentinelHealth": "enable health monitoring in the Microsoft Sentinel settings",
    "SentinelAudit": "enable audit monitoring in the Microsoft Sentinel settings",
    "StorageBlobLogs": "enable blob logs in the diagnostic settings of the storage account",
    "AzureDevOpsAuditing": "stream the Azure DevOps audit log to the workspace",
    "AZFWNetworkRule": "send Azure Firewall logs to the workspace in resource-specific mode",
    "AZFWApplicationRule": "send Azure Firewall logs to the workspace in resource-specific mode",
    "AZFWDnsQuery": "send Azure Firewall logs to the workspace in resource-specific mode",
    "IntuneAuditLogs": "send Intune logs to the workspace in the Intune diagnostic settings",
    "IntuneDevices": "send Intune logs to the workspace in the Intune diagnostic settings",
    "IntuneOperationalLogs": "send Intune logs to the workspace in the Intune diagnostic settings",
}


def known_table_note(table: str) -> str:
    """Return what must be enabled for a well-known table, or an empty string."""
    for product in _PRODUCTS:
        if table in product.tables:
            return _product_note(product, table)
    return _OTHER_TABLES.get(table, "")


def _product_note(product: _Product, table: str) -> str:
    if product.connector_id:
        note = f"enable the {product.connector} data connector ({product.connector_id})"
    else:
        note = f"enable {product.connector}"
    if product.setting:
        note += f" with {product.setting}"
    if product.extra:
        note += f"; {product.extra}"
    return note


def describe_sources(
    sources: QuerySources, connectors: Sequence[RequiredConnector] = ()
) -> list[DataSource]:
    """Return one DataSource per source the query reads, each with a note on what to enable."""
    return [_describe(source, connectors) for source in sources.sources]


def connector_data_sources(connectors: Sequence[RequiredConnector]) -> list[DataSource]:
    """Return one DataSource of kind "connector" per distinct requiredDataConnectors id."""
    merged: dict[str, list[str]] = {}
    for connector in connectors:
        types = merged.setdefault(connector.connector_id, [])
        types.extend(t for t in connector.data_types if t not in types)
    return [
        DataSource(
            kind="connector",
            name=connector_id,
            note="Microsoft Sentinel data connector the rule lists as required",
            origin="source: requiredDataConnectors",
            details={"data_types": data_types},
        )
        for connector_id, data_types in merged.items()
    ]


def _describe(source: SourceRef, connectors: Sequence[RequiredConnector]) -> DataSource:
    details: dict[str, object] = {}
    if source.wildcard:
        details["wildcard"] = True
    if source.kind == "asim_parser":
        note = _asim_note(source.name)
    elif source.kind == "watchlist":
        note = f"create a Microsoft Sentinel watchlist with the alias {source.name!r}"
    elif source.kind == "function":
        note = f"the workspace must define the function {source.name} (a saved function or parser)"
    else:
        ids = _connectors_writing(source.name, connectors)
        if ids:
            details["connectors"] = ids
        note = _table_note(source, ids)
    return DataSource(
        kind="table" if source.kind == "table" else source.kind,
        name=source.name,
        note=note,
        custom=source.custom,
        origin=QUERY_ORIGIN,
        details=details,
    )


def _table_note(source: SourceRef, connector_ids: list[str]) -> str:
    table = source.name
    if connector_ids:
        if len(connector_ids) == 1:
            note = f"enable the Microsoft Sentinel data connector {connector_ids[0]}"
        else:
            note = "enable one of the Microsoft Sentinel data connectors " + ", ".join(
                connector_ids
            )
        note += f", which writes {table}"
        if source.custom:
            note += "; it is a custom table"
        return note
    if source.custom:
        return (
            f"{table} is a custom table: it needs a custom ingestion, such as a data collection "
            "rule fed by the Logs Ingestion API or the connector that creates it"
        )
    if source.wildcard:
        return f"enable the connectors or data collection that write the tables matching {table}"
    return known_table_note(table) or f"enable the connector or data collection that writes {table}"


def _asim_note(name: str) -> str:
    built_in = name.startswith(("_Im_", "_ASim_", "_im_"))
    where = "built into Microsoft Sentinel" if built_in else "deployed to the workspace"
    return (
        f"ASIM parser {name} ({where}); enable at least one data connector whose data "
        "this parser normalizes"
    )


def _connectors_writing(table: str, connectors: Sequence[RequiredConnector]) -> list[str]:
    wanted = table.casefold()
    ids: list[str] = []
    for connector in connectors:
        types = {data_type.strip().casefold() for data_type in connector.data_types}
        if wanted in types and connector.connector_id not in ids:
            ids.append(connector.connector_id)
    return ids

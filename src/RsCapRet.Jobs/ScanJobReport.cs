namespace RsCapRet.Jobs;

/// <summary>What an archive scan decided (kept on its job, so `index-archive --wait` and the dashboard show it).</summary>
public sealed record ScanJobReport(string Summary, IReadOnlyList<ScanJobLine> Decisions, int Files, int Hashed);

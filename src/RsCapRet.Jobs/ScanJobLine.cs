namespace RsCapRet.Jobs;

/// <summary>One path's decision; <see cref="JobId"/> is the ingest job queued for it.</summary>
public sealed record ScanJobLine(string Path, string Decision, string? Detail, string? From, string? JobId);

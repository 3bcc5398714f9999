using System.IO.Enumeration;
using RsCapRet.Core;
using RsCapRet.Storage;

namespace RsCapRet.Pipeline;

/// <summary>
/// What a scan decided for one path. Added and Changed need an ingest (model work unless the bytes are known); Skipped
/// is a folder the scan did not enter (a link out of the archive, too deep).
/// </summary>
public enum ScanDecisionKind { Added, Changed, Removed, Moved, Unchanged, Failed, Skipped }

/// <summary>One path's decision; <see cref="From"/> is the old path of a move; <see cref="Detail"/> says why.</summary>
public sealed record ScanDecision(string Path, ScanDecisionKind Kind, string? Detail = null, string? From = null)
{
    public string Word => Kind.ToString().ToLowerInvariant();

    public override string ToString() => Kind switch
    {
        ScanDecisionKind.Moved => $"moved     {Path} (from {From}; same bytes, no model work)",
        _ => $"{Word,-9} {Path}" + (Detail is { } d ? $": {d}" : ""),
    };
}

/// <summary>A scan's decisions and how many files it had to hash (the others were known by size and mtime).</summary>
public sealed record ScanResult(IReadOnlyList<ScanDecision> Decisions, int Files, int Hashed)
{
    public IEnumerable<ScanDecision> ToIngest => Decisions.Where(d => d.Kind is ScanDecisionKind.Added or ScanDecisionKind.Changed);

    public string Summary => $"{Counted.Of(Files, "file")} seen ({Hashed} hashed): " + string.Join(", ",
        Enum.GetValues<ScanDecisionKind>().Select(k => $"{Decisions.Count(d => d.Kind == k)} {k.ToString().ToLowerInvariant()}"));
}

/// <summary>
/// Compares an archive folder with what the catalogue shows for it (one model, one ingest plan) and applies the
/// decisions that need no model work: a file gone is removed from search, a file renamed or moved with the same
/// bytes keeps its version (and tile ids) under its new path. New and changed files are returned for ingestion.
/// Files whose size and modification time are what the last scan saw are not re-hashed.
/// </summary>
public static class ArchiveScan
{
    public static async Task<ScanResult> RunAsync(CatalogStore store, string root, string pattern, int modelId, string planKey,
        Action<string>? log = null, bool followLinksOutside = false, CancellationToken ct = default)
    {
        root = Path.GetFullPath(root);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"{root}: archive folder is not reachable");
        var known = await store.KnownFilesUnderAsync(root, ct);
        var catalogued = (await store.CurrentPathsUnderAsync(root, modelId, ct)).ToDictionary(p => p.Path, StringComparer.Ordinal);
        var decisions = new List<ScanDecision>();
        var newFiles = new List<(string Path, string Sha)>();
        var onDisk = new HashSet<string>(StringComparer.Ordinal);
        int files = 0, hashed = 0;
        var skippedFolders = new List<(string Folder, string Why)>();
        foreach (var file in FilesUnder(root, pattern, followLinksOutside, skippedFolders.Add).Order(StringComparer.Ordinal))
        {
            ct.ThrowIfCancellationRequested();
            files++;
            onDisk.Add(file);
            string sha;
            try
            {
                var (described, didHash) = await SceneIngestor.DescribeKnownAsync(store, file, known.GetValueOrDefault(file), ct);
                sha = described.ContentSha256;
                if (didHash) hashed++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or Raster.RasterException)
            {
                decisions.Add(new ScanDecision(file, ScanDecisionKind.Failed, e.Message));
                continue;
            }
            if (catalogued.TryGetValue(file, out var c))
            {
                // The bytes and plan that failed last time fail again: not re-queued on every scan (`scenes retry` tries
                // again); the ones being ingested are not queued twice.
                if (c.Attempt is { } f && f.Sha256 == sha && f.PlanKey == planKey && f.Status == SceneStatus.Failed)
                    decisions.Add(new ScanDecision(file, ScanDecisionKind.Failed, $"{f.Error} (unchanged since it failed; `rscapret scenes retry` tries again)"));
                else if (c.Attempt is { } g && g.Sha256 == sha && g.PlanKey == planKey && g.Status == SceneStatus.Ingesting)
                    decisions.Add(new ScanDecision(file, ScanDecisionKind.Unchanged, "being ingested"));
                else if (c.SceneId is null) decisions.Add(new ScanDecision(file, ScanDecisionKind.Added, "not ingested yet (earlier attempt pending or failed)"));
                else if (c.ContentSha256 != sha) decisions.Add(new ScanDecision(file, ScanDecisionKind.Changed, "content changed: a new version is ingested; searches see the old one until it completes"));
                else if (c.PlanKey != planKey) decisions.Add(new ScanDecision(file, ScanDecisionKind.Changed, c.PlanKey == "legacy"
                    ? "ingested by an earlier version of the tiler (edge strips lost): a new version is ingested"
                    : "ingest plan changed: a new version is ingested"));
                else decisions.Add(new ScanDecision(file, ScanDecisionKind.Unchanged));
            }
            else newFiles.Add((file, sha));
        }

        // Gone: catalogued paths under the folder that the pattern covers and that are no longer there.
        var covered = new FilePattern(pattern);
        var gone = catalogued.Values.Where(c => !onDisk.Contains(c.Path) && MatchesPattern(root, c.Path, covered)
                                                && !skippedFolders.Any(f => c.Path.StartsWith(f.Folder + "/", StringComparison.Ordinal))).ToList();
        foreach (var (path, sha) in newFiles)
        {
            var moved = gone.FirstOrDefault(g => g.SceneId is not null && g.ContentSha256 == sha && g.PlanKey == planKey);
            if (moved is not null && await store.MovePathAsync(moved.Path, path, modelId, ct))
            {
                gone.Remove(moved);
                decisions.Add(new ScanDecision(path, ScanDecisionKind.Moved, From: moved.Path));
            }
            else decisions.Add(new ScanDecision(path, ScanDecisionKind.Added));
        }
        if (gone.Count > 0)
        {
            await store.RemovePathsAsync(gone.Select(g => g.Path).ToList(), modelId, ct: ct);
            decisions.AddRange(gone.Select(g => new ScanDecision(g.Path, ScanDecisionKind.Removed, "gone from the archive: out of search (kept for `changes` until `scenes prune`)")));
        }
        // Folders the scan did not enter are said, not silently left out (their files are not removed from the catalogue
        // either: a link out of the archive that is refused now keeps what an earlier, allowed scan indexed through it).
        decisions.AddRange(skippedFolders.Select(f => new ScanDecision(f.Folder, ScanDecisionKind.Skipped, f.Why)));
        var ordered = decisions.OrderBy(d => d.Path, StringComparer.Ordinal).ToList();
        foreach (var d in ordered.Where(d => d.Kind != ScanDecisionKind.Unchanged)) log?.Invoke(d.ToString());
        return new ScanResult(ordered, files, hashed);
    }

    /// <summary>Folders deeper than this below the archive root are not scanned (and are reported).</summary>
    public const int MaxDepth = 64;

    /// <summary>
    /// The files matching <paramref name="pattern"/> under <paramref name="root"/>, each folder read once: a symbolic
    /// link back to a folder already read (a loop such as `sub/up -> ..`, or a second way to the same folder) is not
    /// followed again, so a scan ends whatever links the archive holds. A link to a folder outside the root is not
    /// followed unless <paramref name="followLinksOutside"/>; folders more than <see cref="MaxDepth"/> levels down are
    /// not read. Folders not entered are passed to <paramref name="skipped"/> with why.
    /// </summary>
    public static IEnumerable<string> FilesUnder(string root, string pattern, bool followLinksOutside = false, Action<(string, string)>? skipped = null)
    {
        var matcher = new FilePattern(pattern);
        var read = new HashSet<string>(StringComparer.Ordinal);
        var realRoot = RealPath(Path.GetFullPath(root)).TrimEnd('/') + "/";
        var folders = new Stack<(string Path, int Depth)>();
        folders.Push((Path.GetFullPath(root), 0));
        while (folders.Count > 0)
        {
            var (folder, depth) = folders.Pop();
            var real = RealPath(folder);
            if (!read.Add(real)) continue;
            if (depth > 0 && !followLinksOutside && !(real + "/").StartsWith(realRoot, StringComparison.Ordinal))
            {
                skipped?.Invoke((folder, $"a link to {real}, outside the archive root: not followed (index-archive --follow-links-outside allows it)"));
                continue;
            }
            if (depth > MaxDepth)
            {
                skipped?.Invoke((folder, $"more than {MaxDepth} folders below the archive root: not scanned"));
                continue;
            }
            IEnumerable<string> files, subfolders;
            try
            {
                files = Directory.EnumerateFiles(folder).Where(f => matcher.Matches(Path.GetFileName(f))).ToList();
                subfolders = Directory.EnumerateDirectories(folder).ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }   // unreadable folder: its files are not there
            foreach (var f in files) yield return f;
            // Deterministic order, real folders before links to them: a folder reached both ways keeps one path scan after scan.
            foreach (var d in subfolders.OrderBy(d => new DirectoryInfo(d).LinkTarget is null).ThenByDescending(d => d, StringComparer.Ordinal))
                folders.Push((d, depth + 1));
        }
    }

    /// <summary>The folder with every symbolic link on its way resolved (the loop check's key; links of links too, 40 deep at most).</summary>
    private static string RealPath(string folder, int depth = 0)
    {
        var real = "/";
        foreach (var part in Path.GetFullPath(folder).Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(real, part);
            if (depth < 40 && new DirectoryInfo(next).LinkTarget is { } target)
                next = RealPath(Path.GetFullPath(target, real), depth + 1);
            real = next;
        }
        return real;
    }

    private static bool MatchesPattern(string root, string path, FilePattern pattern) =>
        path.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal) && pattern.Matches(Path.GetFileName(path));
}

/// <summary>
/// An archive scan's file pattern: wildcards (`*`, `?`) matched without regard to case, as archives name the same
/// format `.tif` and `.TIF` (Landsat's bands); several patterns separated by commas (`*.tif,*.tiff,*.jp2`). Parsed
/// once per scan, matched against every file name.
/// </summary>
public sealed class FilePattern(string pattern)
{
    /// <summary>What `index-archive` scans when no --pattern is given.</summary>
    public const string Default = "*.tif,*.tiff";

    private readonly string[] _parts = Parts(pattern);

    public bool Matches(string fileName) => _parts.Any(p => FileSystemName.MatchesSimpleExpression(p, fileName, ignoreCase: true));

    private static string[] Parts(string pattern) => pattern.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Why a --pattern is not usable, or null: empty, or a part naming a folder.</summary>
    public static string? Problem(string pattern) =>
        Parts(pattern) is var parts && parts.Length == 0 ? "must name at least one file pattern, such as *.tif"
        : parts.FirstOrDefault(p => p.Contains('/')) is { } withFolder ? $"'{withFolder}' names a folder; a pattern matches file names only (the scan goes through every folder)"
        : null;
}

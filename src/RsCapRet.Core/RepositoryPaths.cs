namespace RsCapRet.Core;

/// <summary>
/// Finds the repository root (the folder holding RsCapRet.Pipeline.sln) from a running binary, so tools,
/// tests and the demo can reach committed samples and the sibling ../shared folder without hard-coded paths.
/// </summary>
public static class RepositoryPaths
{
    public const string SolutionFile = "RsCapRet.Pipeline.sln";

    /// <summary>The repository root, or null when running from an install outside a checkout.</summary>
    public static string? TryFindRoot(string? start = null)
    {
        foreach (var origin in new[] { start, AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            if (string.IsNullOrEmpty(origin)) continue;
            for (var dir = new DirectoryInfo(origin); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, SolutionFile))) return dir.FullName;
        }
        return null;
    }

    public static string FindRoot() =>
        TryFindRoot() ?? throw new DirectoryNotFoundException(
            $"Could not find the repository root ({SolutionFile}) above {AppContext.BaseDirectory}.");

    /// <summary>The shared data/fixtures folder: $RSCAPRET_SHARED, else ../shared beside the checkout.</summary>
    public static string SharedDirectory()
    {
        if (Configuration.EnvironmentSettings.Load<Configuration.DataPathOptions>().SharedDirectory is { } shared) return Path.GetFullPath(shared);
        return Path.GetFullPath(Path.Combine(FindRoot(), "..", "shared"));
    }
}

namespace RsCapRet.Web;

/// <summary>
/// How the HTTP API names scene files: relative to the archive root (RSCAPRET_ARCHIVE_ROOT) when a scene lies under
/// it, else by its file name only, so that answers and error messages never show the server's directory layout.
/// </summary>
public sealed class ScenePathDisplay
{
    public const string RootVariable = "RSCAPRET_ARCHIVE_ROOT";

    private readonly string? _root;

    public ScenePathDisplay(string? archiveRoot) =>
        _root = string.IsNullOrWhiteSpace(archiveRoot) ? null : Path.TrimEndingDirectorySeparator(Path.GetFullPath(archiveRoot));

    public static ScenePathDisplay FromEnvironment() => new(WebOptions.FromEnvironment().ArchiveRoot);

    /// <summary>The scene's path below the archive root ("2020/scene.tif"), or its file name when it is not below it.</summary>
    public string Name(string path)
    {
        var full = Path.GetFullPath(path);
        if (_root is not null)
        {
            var relative = Path.GetRelativePath(_root, full);
            var first = relative.Split(Path.DirectorySeparatorChar)[0];
            if (!Path.IsPathRooted(relative) && first != ".." && relative != ".")
                return relative.Replace(Path.DirectorySeparatorChar, '/');
        }
        return Path.GetFileName(full);
    }

    /// <summary>
    /// A message about a scene with the scene's folder shown as <see cref="Name"/> shows it, which covers the scene's
    /// own path and those of files beside it that GDAL may name (.aux.xml, .ovr, world files).
    /// </summary>
    public string Redact(string message, string path)
    {
        var full = Path.GetFullPath(path);
        var shown = Name(full);
        var folder = Path.GetDirectoryName(full) is { Length: > 0 } d ? Path.TrimEndingDirectorySeparator(d) + Path.DirectorySeparatorChar : null;
        var shownFolder = shown[..^Path.GetFileName(full).Length];   // "" or "2020/"
        message = message.Replace(full, shown);
        if (path != full) message = message.Replace(path, shown);
        return folder is null || folder == Path.GetPathRoot(full) ? message : message.Replace(folder, shownFolder);
    }
}

using System.Runtime.InteropServices;
using RsCapRet.Raster.Gdal;

namespace RsCapRet.Raster;

/// <summary>An owned OGR spatial reference with traditional GIS axis order (x = easting/longitude).</summary>
internal sealed class SpatialReference : IDisposable
{
    internal readonly SafeSpatialReferenceHandle Handle;

    private SpatialReference(IntPtr raw)
    {
        if (raw == IntPtr.Zero) throw new InvalidOperationException("GDAL could not create a spatial reference: " + GdalRuntime.LastError("unknown error"));
        Handle = new SafeSpatialReferenceHandle();
        Marshal.InitHandle(Handle, raw);
        GdalNative.OSRSetAxisMappingStrategy(Handle, GdalNative.OAMS_TRADITIONAL_GIS_ORDER);
    }

    public static SpatialReference CloneOf(IntPtr borrowed) => new(GdalNative.OSRClone(borrowed));

    public static SpatialReference FromWkt(string wkt)
    {
        GdalRuntime.EnsureInitialised();
        GdalNative.CPLErrorReset();
        var raw = GdalNative.OSRNewSpatialReference(wkt);
        if (raw == IntPtr.Zero) throw new ArgumentException("Not a valid CRS WKT: " + GdalRuntime.LastError("GDAL rejected it"));
        return new SpatialReference(raw);
    }

    public static SpatialReference FromEpsg(int epsg)
    {
        GdalRuntime.EnsureInitialised();
        var srs = new SpatialReference(GdalNative.OSRNewSpatialReference(null));
        if (GdalNative.OSRImportFromEPSG(srs.Handle, epsg) != 0)
        {
            srs.Dispose();
            throw new ArgumentException($"Unknown EPSG code {epsg}: " + GdalRuntime.LastError("not in GDAL's database"));
        }
        return srs;
    }

    public string ToWkt()
    {
        if (GdalNative.OSRExportToWkt(Handle, out var p) != 0 || p == IntPtr.Zero) return "";
        try { return Marshal.PtrToStringUTF8(p) ?? ""; }
        finally { GdalNative.VSIFree(p); }
    }

    /// <summary>The EPSG code: the authority code when present, else GDAL's identification, else null.</summary>
    public int? Epsg()
    {
        if (GdalNative.Utf8(GdalNative.OSRGetAuthorityName(Handle, null)) != "EPSG") GdalNative.OSRAutoIdentifyEPSG(Handle);
        return GdalNative.Utf8(GdalNative.OSRGetAuthorityName(Handle, null)) == "EPSG"
               && int.TryParse(GdalNative.Utf8(GdalNative.OSRGetAuthorityCode(Handle, null)), out var code) ? code : null;
    }

    /// <summary>The CRS as <see cref="CrsInfo"/>: WKT, EPSG code and the units that turn coordinates into metres.</summary>
    public CrsInfo Describe()
    {
        var geographic = GdalNative.OSRIsGeographic(Handle) != 0;
        var projected = GdalNative.OSRIsProjected(Handle) != 0;
        double? metresPerUnit = projected ? GdalNative.OSRGetLinearUnits(Handle, out _) : null;
        double? radiansPerUnit = geographic ? GdalNative.OSRGetAngularUnits(Handle, out _) : null;
        (double, double)? ellipsoid = null;
        if (geographic)
        {
            var a = GdalNative.OSRGetSemiMajor(Handle, out var e1);
            var inverseFlattening = GdalNative.OSRGetInvFlattening(Handle, out var e2);
            if (e1 == 0 && e2 == 0) ellipsoid = (a, inverseFlattening);
        }
        return new CrsInfo(ToWkt(), Epsg()) { IsGeographic = geographic, MetresPerUnit = metresPerUnit, RadiansPerUnit = radiansPerUnit, Ellipsoid = ellipsoid };
    }

    public void Dispose() => Handle.Dispose();
}

/// <summary>Transforms coordinates between two CRSs (traditional GIS axis order on both sides).</summary>
internal sealed class CoordinateTransform : IDisposable
{
    private readonly SafeCoordinateTransformationHandle _handle;
    private readonly string _description;

    public CoordinateTransform(SpatialReference source, SpatialReference target, string description)
    {
        _description = description;
        GdalNative.CPLErrorReset();
        var raw = GdalNative.OCTNewCoordinateTransformation(source.Handle, target.Handle);
        if (raw == IntPtr.Zero) throw new InvalidOperationException($"{description}: no coordinate transformation: {GdalRuntime.LastError("GDAL could not build one")}");
        _handle = new SafeCoordinateTransformationHandle();
        Marshal.InitHandle(_handle, raw);
    }

    public void Transform(double[] x, double[] y)
    {
        GdalNative.CPLErrorReset();
        if (GdalNative.OCTTransform(_handle, x.Length, x, y, null) == 0)
            throw new InvalidOperationException($"{_description}: coordinates could not be transformed: {GdalRuntime.LastError("outside the CRS's area")}");
    }

    /// <summary>Transforms what can be transformed; <paramref name="ok"/> says which points could (the others are left as they were).</summary>
    public void TryTransform(double[] x, double[] y, bool[] ok)
    {
        var success = new int[x.Length];
        GdalNative.CPLErrorReset();
        GdalNative.OCTTransformEx(_handle, x.Length, x, y, null, success);
        for (var i = 0; i < ok.Length; i++) ok[i] = success[i] != 0 && double.IsFinite(x[i]) && double.IsFinite(y[i]);
    }

    public void Dispose() => _handle.Dispose();
}

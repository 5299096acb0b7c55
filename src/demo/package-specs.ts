import { javaLibraryClosure } from './apt.js';
import { CA_BUNDLE, writeJavaTrustStore } from './java-trust-store.js';

/** A package of the demo catalog: which Debian packages it is made of and where it lands. */
export interface PackageSpec {
  /** Code name in the catalog. */
  code: string;
  /** Directory name under the work dir's pkgs/ and under /opt in the image. */
  name: string;
  /** The directory the package owns in every image it is part of. */
  prefix: string;
  /** The Debian packages whose files make it up. */
  debs(signal?: AbortSignal): Promise<string[]>;
  /** The tree (a path in the unpacked packages) that becomes the prefix. */
  source: string;
  env: Record<string, string>;
  pathAdd: string[];
  description: string;
  group?: string;
  /** A file that must exist in the built directory (relative to it), as a sanity check. */
  mustHave: string;
  /**
   * A step after relocation, for what a Debian postinst would have made. `id` is part of the
   * build key: changing the step rebuilds the package. `run` returns a line for the demo output.
   */
  finish?: { id: string; run(dir: string, signal?: AbortSignal): Promise<string> };
}

/** Debian names the JVM directory after the dpkg architecture (amd64, arm64…). */
export function demoPackages(debArch: string): PackageSpec[] {
  return [
    {
      code: 'JDK17.0',
      name: 'jdk-17.0',
      prefix: '/opt/jdk-17.0',
      // The jdk package only adds the tools; the JVM itself is in the jre package.
      debs: async () => ['openjdk-17-jdk-headless', 'openjdk-17-jre-headless'],
      source: `/usr/lib/jvm/java-17-openjdk-${debArch}`,
      env: { JAVA_HOME: '/opt/jdk-17.0' },
      pathAdd: ['/opt/jdk-17.0/bin'],
      description: 'OpenJDK 17 (Debian openjdk-17-jdk-headless, relocated)',
      group: 'jdk',
      mustHave: 'bin/java',
      finish: {
        id: 'trust-store-2',
        run: async (dir, signal) => `trust store: ${await writeJavaTrustStore(dir, signal)} CAs from ${CA_BUNDLE} in lib/security/cacerts`,
      },
    },
    {
      code: 'MVN3.8',
      name: 'mvn-3.8',
      prefix: '/opt/mvn-3.8',
      debs: async (signal) => ['maven', ...(await javaLibraryClosure('maven', signal))],
      source: '/usr/share/maven',
      env: { MAVEN_HOME: '/opt/mvn-3.8' },
      pathAdd: ['/opt/mvn-3.8/bin'],
      description: 'Apache Maven 3.8 (Debian maven and its jars, relocated; needs a JDK)',
      mustHave: 'boot/plexus-classworlds-2.x.jar',
    },
    {
      code: 'GO1.19',
      name: 'go-1.19',
      prefix: '/opt/go-1.19',
      // golang-1.19-src: without the standard library sources `go build` cannot work.
      debs: async () => ['golang-1.19-go', 'golang-1.19-src'],
      source: '/usr/lib/go-1.19',
      // Debian's go was built for GOROOT /usr/lib/go-1.19; say where it lives now.
      env: { GOROOT: '/opt/go-1.19' },
      pathAdd: ['/opt/go-1.19/bin'],
      description: 'Go 1.19 (Debian golang-1.19-go + golang-1.19-src, relocated)',
      mustHave: 'bin/go',
    },
  ];
}
